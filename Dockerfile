# authfault as a container: a static (musl) binary on distroless/static, run
# as the non-root user 65532. No container engine runs on authfault's CI, so
# CI builds and checks the same static binary (.ci/run) and users build the
# image:
#
#   docker build -t authfault .
#   docker run --rm -p 8080:8080 -p 8081:8081 authfault
#
# Then point the suite at http://HOST:8080 and trust http://HOST:8081/ca.pem
# (or mount /certs). See "In CI" in README.md and examples/.

# --- build: the release binary, statically linked against musl -------------
FROM rust:1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY tests tests
RUN cargo build --release --locked --target "$(uname -m)-unknown-linux-musl" \
 && cp "target/$(uname -m)-unknown-linux-musl/release/authfault" /authfault \
 && /authfault --version
# The folders the image declares as volumes, owned by the user it runs as
# (a fresh named volume takes its owner from the image). The failure modes of
# rules/ come with the image, every rule disabled until a scenario picks it.
COPY rules /layout/rules
RUN mkdir -p /layout/certs /layout/recordings \
 && chown -R 65532:65532 /layout

# --- run: no shell, no package manager; CA roots for upstream TLS ----------
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /authfault /usr/local/bin/authfault
COPY --from=build /layout/ /
USER 65532:65532
# ./rules, ./certs and ./recordings, authfault's defaults, are the volumes.
WORKDIR /
VOLUME ["/rules", "/certs", "/recordings"]
# Proxy, admin API.
EXPOSE 8080 8081
# The binary checks itself: the image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["authfault", "health", "http://127.0.0.1:8081/healthz"]
# Every option is also an environment variable (AUTHFAULT_*; README,
# "Command line"); the admin API and the proxy listen on every interface of
# the container, which --allow-remote permits.
ENTRYPOINT ["authfault"]
CMD ["run", "--listen", "0.0.0.0:8080", "--admin", "0.0.0.0:8081", "--allow-remote"]
