#!/usr/bin/env bash
# The event feed's log entries as native journal entries with fields,
# when porthopd's stderr is journald's stream (JOURNAL_STREAM names it),
# in the demo's topology with a crafted SYN (nping).  No systemd-journald
# runs in the test machines: the journal's socket is a stand-in the test
# binds (journal_sink), named with porthopd's test-only --journal-socket;
# stderr is the log file, and JOURNAL_STREAM its device and inode, as
# journald would set them.  With the socket gone, the event is the log
# line again.
. "$(dirname "$0")/lib.sh"
require_tools nping python3
. "$SRC/scripts/topology.sh"

P=phj$$
topo_up "$P"
H="${P}host"
TARGET=${TOPO_ADDR[host]}
GOOD=${TOPO_ADDR[good]}
topo_config_native "$T/base.json"
jq '.porthopd.events = {merge_ms: 200}' "$T/base.json" >"$T/events.json"
JSOCK=$T/journal.sock
journal_sink "$JSOCK" "$T/journal"
: >"$LOG"
JOURNAL_STREAM=$(stat -c '%d:%i' "$LOG")
export JOURNAL_STREAM
redis_start "$H"
porthopd_start "$H" -c "$T/events.json" -s "$T/control.sock" --journal-socket "$JSOCK"
unset JOURNAL_STREAM
ctl() { host_ctl "$@"; }

# entry_of PORT: the journal entry (a file) of the probe event of that
# port from $GOOD, if one came.
entry_of() {
	grep -la -x "PORTHOP_PORT=$1" "$T"/journal/0* 2>/dev/null |
		xargs -r grep -la -x "PORTHOP_SOURCE=$GOOD" | head -n1
}
has_entry() { [ -n "$(entry_of "$1")" ]; }

# 1. A probe: one entry, its fields, MESSAGE the JSON line.
ip netns exec "${P}good" nping --send-ip --tcp -p 1999 --flags syn -c 1 \
	"$TARGET" >/dev/null 2>&1 || true
wait_for 10 "the journal entry of a probe of port 1999" has_entry 1999
e=$(entry_of 1999)
for f in PORTHOP_KIND=probe PORTHOP_PROTO=tcp PORTHOP_GENERATION=1 \
	 PORTHOP_COUNT=1 PRIORITY=6 SYSLOG_IDENTIFIER=porthopd; do
	grep -a -x -F "$f" "$e" >/dev/null || fail "no $f in the entry: $(cat -v "$e")"
done
if grep -a "^PORTHOP_REAL_PORT=" "$e" >/dev/null; then
	fail "a probe's entry has a real port"
fi
msg=$(sed -n 's/^MESSAGE=//p' "$e")
echo "$msg" | jq -e --arg s "$GOOD" '.kind == "probe" and .source == $s and
	.port == 1999 and .proto == "tcp" and .real_port == null' >/dev/null ||
	fail "MESSAGE is not the event's JSON line: $msg"
# The same event in porthop events; not as a line on stderr.
ctl events --json | jq -e --arg s "$GOOD" \
	'select(.source == $s and .port == 1999)' >/dev/null ||
	fail "the event is not in porthop events"
if grep -F "event {" "$LOG" | grep -F "1999" >/dev/null; then
	fail "the event went to stderr as well"
fi
# The other lines stay on stderr, with journald's priority prefix.
grep -E '^<6>' "$LOG" >/dev/null || fail "no <6> prefix on stderr's lines"
pass "a probe as a native journal entry: PORTHOP_* fields, MESSAGE the JSON line"

# 2. The journal's socket gone: the event is the log line.
journal_sink_stop
rm -f "$JSOCK"
ip netns exec "${P}good" nping --send-ip --tcp -p 1998 --flags syn -c 1 \
	"$TARGET" >/dev/null 2>&1 || true
line_1998() { grep -F "event {" "$LOG" | grep -F '"port":1998' >/dev/null; }
wait_for 10 "the probe of port 1998 as a log line" line_1998
pass "without the journal's socket: the JSON line on stderr"
porthopd_stop || fail "porthopd exited with an error"
