#!/usr/bin/env python3
"""Instructions per exchange, counted by callgrind: an A/B of authfault's
user-space work that the 2-core machine's noise cannot blur (CPU time per
request moves by 10-40% between runs; instruction counts by well under 1%).

    python3 benches/callgrind.py                      # the rules scenario
    python3 benches/callgrind.py https-ka --bin /tmp/other/authfault

Runs `cargo bench --bench proxy -- SCENARIO --runs 1` with each proxy the
bench starts under `valgrind --tool=callgrind` (slow: a few hundred requests
a second), then prints, per proxy, the exchanges it served and the
instructions per exchange of the functions that do authfault's own work.
"total less start-up" also holds the 16 connections' TLS handshakes, spread
over however many exchanges the run managed; compare the functions, or runs
with similar exchange counts. Needs valgrind (callgrind_annotate), which
runs SHA-256 without the CPU's SHA instructions: fingerprints look dearer
than they are. Kernel time is not counted at all.
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


def summarize(path):
    tree = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--tree=caller", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.replace("authfault::", "")

    def inclusive(name):
        marker = "*  ???:" + name + " ["
        for line in tree.splitlines():
            if marker in line:
                return int(line.split()[0].replace(",", ""))
        return 0

    # One record is built per exchange, whatever the flags.
    calls = re.search(
        r"< \?\?\?:std::sys::backtrace::__rust_begin_short_backtrace \(([\d,]+)x\)[^\n]*\n"
        r"[^\n]*\*  \?\?\?:record::entry::Record::build \[",
        tree,
    )
    total = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", tree)
    if not calls or not total:
        return None
    exchanges = int(calls.group(1).replace(",", ""))
    total = int(total.group(1).replace(",", ""))
    startup = inclusive("cli::serve::proxy_config")
    lines = [
        f"exchanges: {exchanges:,}",
        f"{(total - startup) / exchanges:>10,.0f}  total less start-up",
    ]
    for label, name in FUNCTIONS:
        count = inclusive(name)
        if count:
            lines.append(f"{count / exchanges:>10,.0f}  {label}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="rules")
    parser.add_argument(
        "--bin",
        default=os.path.join(ROOT, "target", "release", "authfault"),
        help="the authfault binary (default: target/release/authfault)",
    )
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"no authfault binary at {args.bin}: cargo build --release, or pass --bin")
    with tempfile.TemporaryDirectory() as work:
        wrapper = os.path.join(work, "callgrind-authfault")
        with open(wrapper, "w") as f:
            f.write(
                "#!/bin/sh\nexec valgrind --tool=callgrind "
                f"--callgrind-out-file={work}/cg.%p.out {args.bin} \"$@\"\n"
            )
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
        print(f"\ninstructions per exchange ({args.scenario}, {args.bin})")
        print("one block per proxy, in the order the bench started them")
        for out in outs:
            summary = summarize(os.path.join(work, out))
            if summary:
                print("\n" + summary)


if __name__ == "__main__":
    main()
