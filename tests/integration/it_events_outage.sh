#!/usr/bin/env bash
# The event feed's outlets when they fail, in the demo's topology with
# crafted SYNs (nping): Redis restarted mid-run (events after the restart
# are appended again; those during the outage are counted in
# porthop_events_dropped_total{reason="stream"}: every event is in the
# stream or counted, nothing silently lost), and a hook that never exits
# (killed after 10 s and counted; while 8 hang, events are refused to it
# and counted).
. "$(dirname "$0")/lib.sh"
require_tools nping nmap
. "$SRC/scripts/topology.sh"

P=pho$$
topo_up "$P"
H="${P}host"
TARGET=${TOPO_ADDR[host]}
GOOD=${TOPO_ADDR[good]}
cat >"$T/hang.sh" <<'SH'
#!/bin/sh
exec sleep 600
SH
chmod 755 "$T/hang.sh"
topo_config_native "$T/base.json"
jq --arg hook "$T/hang.sh" '.porthopd.events = {merge_ms: 200,
	redis_stream: "porthop:events", hook: [$hook], hook_per_minute: 6000}' \
	"$T/base.json" >"$T/events.json"
topo_porthopd "$P" "$T/events.json"
ctl() { host_ctl "$@"; }

events_total() {
	local k total=0
	for k in probe moved vacated stale; do
		total=$((total + $(metric "porthop_events_total{kind=\"$k\"}")))
	done
	echo "$total"
}
dropped() { metric "porthop_events_dropped_total{reason=\"$1\"}"; }
xlen() { ip netns exec "$H" redis-cli XLEN porthop:events 2>/dev/null || echo 0; }
probe() {
	ip netns exec "${P}good" nping --send-ip --tcp -p "$1" --flags syn -c 1 \
		"$TARGET" >/dev/null 2>&1 || true
}
# accounted BASE_EVENTS BASE_DROPPED: every event since the base is in
# the stream or counted as not appended.
accounted() {
	[ $(( $(events_total) - $1 )) -eq $(( $(xlen) + $(dropped stream) - $2 )) ]
}

# 1. Redis up: the events are in the stream.
probe 1901
has_stream() { [ "$(xlen)" -ge 1 ]; }
wait_for 10 "an event in the stream" has_stream
wait_for 10 "every event in the stream or counted" accounted 0 0
pass "events appended to the Redis stream"

# 2. Redis down: the events go on (porthop events) and are counted as not
# appended.
e0=$(events_total)
d0=$(dropped stream)
redis_stop "$H"
for p in 1911 1912 1913 1914 1915; do probe $p; done
five_more() { [ "$(events_total)" -ge $((e0 + 5)) ]; }
wait_for 10 "5 more events" five_more
all_dropped() { [ $(( $(dropped stream) - d0 )) -eq $(( $(events_total) - e0 )) ]; }
wait_for 10 "every event of the outage counted as not appended" all_dropped
n=$(ctl events --json | jq -s --arg s "$GOOD" \
	'map(select(.source == $s and .port >= 1911 and .port <= 1915)) | length')
[ "$n" -eq 5 ] || fail "porthop events has $n of the outage's 5 events"
pass "Redis down: $(( $(dropped stream) - d0 )) events counted in porthop_events_dropped_total{reason=\"stream\"}"

# 3. Redis back (empty: no persistence): the stream reconnects (its
# backoff) and the next events are appended; over the whole outage every
# event is in the new stream or counted.
redis_start "$H"
e1=$(events_total)
d1=$(dropped stream)
port=1920
appended_again() {
	port=$((port + 1))
	probe $port
	ip netns exec "$H" redis-cli --raw XRANGE porthop:events - + 2>/dev/null |
		grep -F "\"source\":\"$GOOD\"" | grep -F "\"port\":$port," >/dev/null
}
wait_for 60 "an event appended after Redis came back" appended_again
wait_for 10 "every event since the outage in the stream or counted" \
	accounted "$e1" "$d1"
pass "Redis restarted: events appended again (port $port); every event since appended or counted"

# 4. The hook never exits: each run is killed after 10 s and counted;
# every event was given to the hook or counted as refused.
wait_for 30 "a hook run killed after 10 s" metric_above \
	porthop_events_hook_killed_total 0
# (One scrape: the two counts of the same moment.)
ctl metrics | awk '$1 == "porthop_events_hook_failures_total" {f = $2}
	$1 == "porthop_events_hook_killed_total" {k = $2}
	END {exit !(f >= k && k > 0)}' || fail "a killed run not counted as failed"
# A burst of 10 events within half a second: 8 children at most, so at
# least 2 are refused to the hook.
h0=$(dropped hook)
e2=$(events_total)
ip netns exec "${P}good" nmap -sS -p 1930-1939 -n -Pn -T5 --max-retries 0 \
	"$TARGET" >/dev/null 2>&1 || true
ten_more() { [ "$(events_total)" -ge $((e2 + 10)) ]; }
wait_for 10 "the burst's 10 events" ten_more
hook_accounted() {
	[ $(( $(metric porthop_events_hook_runs_total) + $(dropped hook) )) -eq "$(events_total)" ]
}
wait_for 10 "every event given to the hook or counted" hook_accounted
[ "$(dropped hook)" -ge $((h0 + 2)) ] || fail "a burst of 10 events: only $(( $(dropped hook) - h0 )) refused to 8 children"
pass "a hook that never exits: $(metric porthop_events_hook_killed_total) runs killed after 10 s; $(dropped hook) events refused while 8 hung, counted"
PORTHOPD_PID=$(cat "$T/porthopd.pid" 2>/dev/null || echo "$PORTHOPD_PID")
porthopd_stop || fail "porthopd exited with an error"
