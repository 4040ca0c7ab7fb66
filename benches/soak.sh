#!/usr/bin/env bash
# Soak: builds the release binary and runs benches/soak.rs against it for
# SECONDS (default 600): mixed HTTP/1.1, HTTP/2 and CONNECT load, perturbing
# rules, failing upstreams and aborted downloads. Prints requests served,
# errors by kind, the proxy's RSS and descriptors at start and end, and
# recorded against completed exchanges; exits 1 if any completed exchange
# is missing from the recording.
#
#   benches/soak.sh 600
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-600}"
cargo build --release --locked
AUTHFAULT_BIN="$PWD/${CARGO_TARGET_DIR:-target}/release/authfault" \
  cargo bench --locked --bench soak -- "$seconds"
