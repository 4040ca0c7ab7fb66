#!/usr/bin/env bash
# Quick A/B check of CPU per request on plain http keep-alive (no peers, no
# harness setup): nginx-light upstream, wrk through the proxy with
# absolute-URI requests, the proxy pinned to CPU 0, wrk and nginx to CPU 1.
# Needs: apt-get install nginx-light wrk. Usage: benches/ka-cpu.sh BINARY LABEL
set -euo pipefail
BIN="$1"; LABEL="$2"
W=$(mktemp -d)
cat > $W/nginx.conf <<NG
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/err.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:38081; location / { return 200 '{"ok":true,"pad":"0123456789012345678901234567890123456789"}'; } } }
NG
taskset -c 1 nginx -c $W/nginx.conf -p $W & NG=$!
cd $W
taskset -c 0 "$BIN" run --listen 127.0.0.1:38090 --admin off --record off --ca-dir $W/certs >/dev/null 2>&1 & P=$!
sleep 1.5
cat > $W/abs.lua <<'LUA'
wrk.path = "http://127.0.0.1:38081/small"
LUA
taskset -c 1 wrk -t1 -c16 -d2s -s $W/abs.lua http://127.0.0.1:38090 >/dev/null 2>&1
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$P/stat)
OUT=$(taskset -c 1 wrk -t1 -c16 -d8s -s $W/abs.lua http://127.0.0.1:38090)
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$P/stat)
REQS=$(echo "$OUT" | awk '/requests in/ {print $1}')
TICKS=$(( (u1-u0) + (s1-s0) ))
HZ=$(getconf CLK_TCK)
echo "$LABEL: $REQS requests, $(echo "$OUT" | awk '/Requests\/sec/ {print $2}') req/s, CPU $(python3 -c "print(round($TICKS/$HZ*1e6/$REQS,1))") us/req"
kill $P $NG 2>/dev/null; wait 2>/dev/null || true
rm -rf $W
