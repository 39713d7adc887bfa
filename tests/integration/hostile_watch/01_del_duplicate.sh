#!/usr/bin/env bash
# watch_del naming the same address twice: the entry leaves the list but
# its mapping stays in force (holders counted once, pairs twice).
. "$(dirname "$0")/common.sh"
start_redis
start_porthopd "$CFG"
ctl watch add 192.0.2.7 --origin f2b-sshd >/dev/null
raw '{"command":"watch_del","origin":"f2b-sshd","entries":[{"address":"192.0.2.7"},{"address":"192.0.2.7"}]}'
agree || fail "192.0.2.7 deleted from the list, still in force in the kernel"
pass "duplicate delete handled"
