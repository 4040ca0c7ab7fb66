#!/usr/bin/env bash
# Recording on versus off, in the same run of the shared harness: the release
# build started twice, with `--record off` and with `--record FILE` (64 KiB
# of each response body captured, the default).
#
#   benches/recording-bench.sh                       # http-ka https-ka https-1m
#   BENCH_SCENARIOS=http-ka benches/recording-bench.sh
#
# Compare req/s and cpu us/req of af-record-on against af-record-off within
# one run; run it three times and take medians (2-core noise is ±10%).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${AUTHFAULT_BENCH_HARNESS:-$ROOT/../shared/bench}"
[[ -x "$HARNESS/run.sh" ]] || { echo "no benchmark harness at $HARNESS (set AUTHFAULT_BENCH_HARNESS)" >&2; exit 2; }
cargo build --release --locked --manifest-path "$ROOT/Cargo.toml"
"$HARNESS/setup.sh"
AF="$ROOT/target/release/authfault"
cd "$HARNESS"
export BENCH_SCENARIOS="${BENCH_SCENARIOS:-http-ka https-ka https-1m}"
exec ./run.sh \
  --peer af-record-off '{DIR}/ca.pem' \
  "exec $AF run --listen 127.0.0.1:{PORT} --ca-dir {DIR} --record off --upstream-ca {UPSTREAM_CA}" \
  --peer af-record-on '{DIR}/ca.pem' \
  "exec $AF run --listen 127.0.0.1:{PORT} --ca-dir {DIR} --record {DIR}/rec.jsonl --record-body 65536 --upstream-ca {UPSTREAM_CA}"
