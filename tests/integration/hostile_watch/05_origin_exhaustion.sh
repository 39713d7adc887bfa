#!/usr/bin/env bash
# Refused adds intern their origin for the refusal counter, and origins
# are never forgotten: 1024 refused requests with made-up origins (any
# control-group member; a Redis publisher when no trigger key is set)
# fill the origin table, and from then on every new origin's first add
# (a new fail2ban jail, crowdsec after porthopd's restart...) fails, and
# reads as "out of memory" (code internal).
. "$(dirname "$0")/common.sh"
start_redis
start_porthopd "$CFG"
nsx python3 - "$T/control.sock" <<'PY'
import socket, sys, json
for i in range(1024):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    s.sendall(json.dumps({"command": "watch_add", "origin": "junk%d" % i,
        "entries": [{"address": "0.0.0.0"}]}, separators=(",", ":")).encode() + b"\n")
    while not s.recv(65536).endswith(b"\n"): pass
    s.close()
PY
ctl watch add 192.0.2.5 --origin crowdsec >"$T/out" 2>&1 || true
cat "$T/out"
grep -q "1 added" "$T/out" || fail "a legitimate new origin is refused after 1024 refused requests"
pass "origins not exhausted by refusals"
