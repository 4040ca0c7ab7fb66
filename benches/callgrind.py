#!/usr/bin/env python3
"""Instructions per exchange, counted by callgrind: an A/B of authfault's
user-space work that the 2-core machine's noise cannot blur (CPU time per
request moves by 10-40% between runs; instruction counts by well under 1%).

    python3 benches/callgrind.py                      # the rules scenario
    python3 benches/callgrind.py https-ka --bin /tmp/other/authfault
    python3 benches/callgrind.py http-ka --hudsucker PATH/TO/hudsucker-noop

Runs `cargo bench --bench proxy -- SCENARIO --runs 1` with each proxy the
bench starts under `valgrind --tool=callgrind` (slow: a few hundred requests
a second). Once a proxy listens its counters are zeroed, so start-up (root
certificates, the CA, the rules) is not counted. Then it prints, per proxy,
the exchanges it served and the instructions per exchange: all of them
("total once listening", which also holds the 16 connections' TLS
handshakes, spread over however many exchanges the run managed), and those
of the functions that do authfault's own work.

With `--hudsucker`, the proxy is the shared harness's no-op MITM peer
(`../shared/bench/peers/hudsucker-noop`, built by its setup.sh) instead of
authfault, counted the same way per response: the same load through a
proxy on the same crates, to set beside authfault's total.

Needs valgrind (callgrind_annotate, callgrind_control), which runs SHA-256
without the CPU's SHA instructions: fingerprints look dearer than they are.
Kernel time is not counted at all.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (label, function as callgrind_annotate names it, crate prefix dropped)
FUNCTIONS = [
    ("all tasks of the runtime", "tokio::runtime::task::raw::poll"),
    ("  handling a request", "proxy::exchange::handle::{{closure}}"),
    ("    choosing a rule", "rules::set::RuleSet::select_among"),
    ("    applying its action", "perturb::action::apply"),
    ("decoding JWTs, wherever", "credential::jwt::decode"),
    ("recorder: building the record", "record::entry::Record::build"),
    (
        "recorder: the JSON line",
        "record::entry::_::<impl serde_core::ser::Serialize for record::entry::Record>::serialize",
    ),
    (
        "recorder: the log line",
        "<tracing_subscriber::fmt::Subscriber<N,E,F,W> as tracing_core::subscriber::Subscriber>::event",
    ),
    ("SHA-256 fingerprints", "credential::fingerprint::Fingerprint::of"),
]


def annotated(path):
    """callgrind_annotate's caller tree of `path`, and its total instructions."""
    tree = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--tree=caller", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", tree)
    return tree, int(total.group(1).replace(",", "")) if total else None


def summarize(path):
    tree, total = annotated(path)
    tree = tree.replace("authfault::", "")

    def inclusive(name):
        # A function on the stack when the counters were zeroed is counted
        # under its recursive name (`name'2`) from then on.
        counts = [0]
        for line in tree.splitlines():
            for variant in (name, name + "'2"):
                if "*  ???:" + variant + " [" in line:
                    counts.append(int(line.split()[0].replace(",", "")))
        return max(counts)

    # One record is built per exchange, whatever the flags.
    calls = re.search(
        r"< \?\?\?:std::sys::backtrace::__rust_begin_short_backtrace \(([\d,]+)x\)[^\n]*\n"
        r"[^\n]*\*  \?\?\?:record::entry::Record::build \[",
        tree,
    )
    if not calls or not total:
        return None
    exchanges = int(calls.group(1).replace(",", ""))
    lines = [
        f"exchanges: {exchanges:,}",
        f"{total / exchanges:>10,.0f}  total once listening",
    ]
    for label, name in FUNCTIONS:
        count = inclusive(name)
        if count:
            lines.append(f"{count / exchanges:>10,.0f}  {label}")
    return "\n".join(lines)


def responses(tree):
    """Responses hyper's HTTP/1.1 server encoded: one per exchange."""
    block, count = [], 0
    marker = "*  ???:<hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::encode ["
    for line in tree.splitlines():
        if not line.strip():
            block = []
            continue
        if marker in line:
            for caller in block:
                m = re.search(r"\(([\d,]+)x\)", caller)
                if m:
                    count += int(m.group(1).replace(",", ""))
        block.append(line)
    return count


def summarize_peer(path):
    tree, total = annotated(path)
    count = responses(tree)
    if not total or not count:
        return None
    return f"responses: {count:,}\n{total / count:>10,.0f}  total once listening"


# Each proxy runs under callgrind; once it answers a request, its counters
# are zeroed, so what is counted is serving, not start-up (root
# certificates, the CA, the rules). `authfault run`'s flags from the bench
# are passed on, or turned into hudsucker-noop's.
WRAPPER = """#!/bin/bash
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --listen) listen="${args[i+1]}";;
    --ca-dir) ca_dir="${args[i+1]}";;
    --upstream-ca) upstream_ca="${args[i+1]}";;
  esac
done
port="${listen##*:}"
(
  # Serving once a request is answered (a 502: nothing listens on port 9).
  for _ in $(seq 600); do
    exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null && break
    sleep 0.1
  done
  printf 'GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\nConnection: close\r\n\r\n' >&3
  read -r -t 60 _ <&3
  exec 3<&-
  callgrind_control --zero $$ >/dev/null
) &
{exec}
"""

AUTHFAULT = 'exec valgrind --tool=callgrind --callgrind-out-file={work}/cg.%p.out {bin} "$@"'

PEER = """mkdir -p "$ca_dir"
exec valgrind --tool=callgrind --callgrind-out-file={work}/cg.%p.out {bin} \\
  --listen "$listen" --ca-out "$ca_dir/ca.pem" --upstream-ca "$upstream_ca"
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="rules")
    parser.add_argument(
        "--bin",
        default=os.path.join(ROOT, "target", "release", "authfault"),
        help="the authfault binary (default: target/release/authfault)",
    )
    parser.add_argument(
        "--hudsucker",
        metavar="BIN",
        help="count the shared harness's hudsucker-noop peer instead of authfault",
    )
    args = parser.parse_args()
    binary = args.hudsucker or args.bin
    if not os.access(binary, os.X_OK):
        sys.exit(f"no executable at {binary}: cargo build --release, or pass --bin/--hudsucker")
    with tempfile.TemporaryDirectory() as work:
        wrapper = os.path.join(work, "callgrind-proxy")
        command = (PEER if args.hudsucker else AUTHFAULT).replace("{work}", work)
        with open(wrapper, "w") as f:
            f.write(WRAPPER.replace("{exec}", command.replace("{bin}", binary)))
        os.chmod(wrapper, 0o755)
        env = dict(os.environ, AUTHFAULT_BENCH_BIN=wrapper)
        subprocess.run(
            ["cargo", "bench", "--locked", "--bench", "proxy", "--", args.scenario, "--runs", "1"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        outs = sorted(
            (p for p in os.listdir(work) if p.startswith("cg.")),
            key=lambda p: int(p.split(".")[1]),
        )
        print(f"\ninstructions per exchange ({args.scenario}, {binary})")
        print("one block per proxy, in the order the bench started them")
        for out in outs:
            path = os.path.join(work, out)
            summary = summarize_peer(path) if args.hudsucker else summarize(path)
            if summary:
                print("\n" + summary)


if __name__ == "__main__":
    main()
