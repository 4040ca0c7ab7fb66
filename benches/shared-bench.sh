#!/usr/bin/env bash
# Measures the release build side by side with a direct connection and the
# peer proxies (mitmproxy, the hudsucker no-op MITM proxy), using the shared
# harness (../shared/bench by default; AUTHFAULT_BENCH_HARNESS overrides).
#
#   benches/shared-bench.sh                   # all four scenarios
#   BENCH_SCENARIOS=https-ka benches/shared-bench.sh
#   PEERS=hudsucker BENCH_DURATION=15 benches/shared-bench.sh
#
# Run on an idle machine, at least three times; compare cpu us/req and the
# ratios rather than absolute req/s (the harness's README says why).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${AUTHFAULT_BENCH_HARNESS:-$ROOT/../shared/bench}"
[[ -x "$HARNESS/run.sh" ]] || { echo "no benchmark harness at $HARNESS (set AUTHFAULT_BENCH_HARNESS)" >&2; exit 2; }
cargo build --release --locked --manifest-path "$ROOT/Cargo.toml"
"$HARNESS/setup.sh"
exec "$HARNESS/run.sh" --builtin "${PEERS:-mitmproxy,hudsucker}" \
  --peer authfault '{DIR}/ca.pem' \
  "exec $ROOT/target/release/authfault run --listen 127.0.0.1:{PORT} --ca-dir {DIR} --record off --upstream-ca {UPSTREAM_CA}"
