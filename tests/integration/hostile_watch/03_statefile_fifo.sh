#!/usr/bin/env bash
# runtime.state replaced by a FIFO (by whoever can write the state
# directory, or a mistake): porthopd opens it O_RDWR (never blocks) and
# then read() blocks for ever: porthopd never applies its configuration
# nor opens its control socket.  Expected: "not a regular file", moved
# aside, start with no runtime entries.
. "$(dirname "$0")/common.sh"
mkdir -p "$STATE"
mkfifo "$STATE/runtime.state"
start_redis
porthopd_spawn "$NS" -c "$CFG" -s "$T/control.sock" -v
echo "$PORTHOPD_PID" >"$T/porthopd.pid"
if ! poll 15 log_has "shuffle 1 applied" 1; then
	echo "--- log:"; cat "$LOG"
	fail "porthopd hung on a FIFO at $STATE/runtime.state (no start-up shuffle in 15 s)"
fi
pass "FIFO state file handled"
