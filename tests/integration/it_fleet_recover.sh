#!/usr/bin/env bash
# The fleet stream without Sentinel: two hosts and one Redis, each in a
# namespace of its own on a bridge.  Entries reach both; a host stopped
# for longer than the stream's retention (MAXLEN 10) catches up from the
# snapshot at start and ends with the snapshot's list; a host killed
# between its kernel commit and its XACK (the XACK refused by an ACL)
# applies the entries again on restart, with the same list and mappings,
# and acknowledges them.
. "$(dirname "$0")/lib.sh"
. "$SRC/scripts/fleet.sh"
fleet_debug() { [ "$1" -eq 0 ] || { for f in "$T"/h*.log; do echo "--- $f"; tail -n 15 "$f"; done; fleet_ctl 1 status --json | jq .stream; } 2>/dev/null; }
on_exit fleet_debug

R=10.77.0.2
fleet_net_up "phf$$"
fleet_node "phf$$-r" $R
fleet_node "phf$$-h1" 10.77.1.1
fleet_node "phf$$-h2" 10.77.1.2
RNS=phf$$-r
# Small stream nodes, so that MAXLEN ~ 10 trims soon.
fleet_redis_primary $RNS $R --stream-node-max-entries 4
# porthopd's own user: the test takes XACK away from it later.
ip netns exec $RNS redis-cli -h $R acl setuser ph on '>phpw' '~*' '&*' '+@all' >/dev/null

REDIS=$(jq -n --arg r $R '{host: $r, username: "ph", password: "phpw"}')
fleet_config "$T/h1.json" h1 "$REDIS" '{"maxlen": 10}'
fleet_config "$T/h2.json" h2 "$REDIS" '{"maxlen": 10}'
# The publisher: the default user, the same stream.
fleet_config "$T/pub.json" pub "{\"host\": \"$R\"}" '{"maxlen": 10}'

pub() {
	ip netns exec $RNS "$PORTHOP" "$@"
}

fleet_host_start 1 "phf$$-h1" "$T/h1.json"
fleet_host_start 2 "phf$$-h2" "$T/h2.json"
pub watch add 192.0.2.1 192.0.2.2 198.51.100.0/24 --fleet -c "$T/pub.json" --ttl 3600 --origin ids >/dev/null
both_hold() {
	[ "$(fleet_list 1 | wc -l)" -eq 3 ] && [ "$(fleet_list 2 | wc -l)" -eq 3 ]
}
wait_for 10 "both hosts to hold the 3 entries" both_hold
[ "$(fleet_list 1)" = "$(fleet_list 2)" ] || fail "the hosts disagree: $(fleet_list 1) / $(fleet_list 2)"
[ "$(fleet_list 1)" = "$(fleet_snapshot $RNS $R)" ] || fail "h1's list is not the snapshot"
e1=$(fleet_list 1 | awk '$1 == "192.0.2.1" {print $3}')
e2=$(fleet_list 2 | awk '$1 == "192.0.2.1" {print $3}')
[ "$e1" = "$e2" ] && [ "$e1" -gt "$(date +%s)" ] || fail "expiries differ: $e1 vs $e2"
pass "one publish, both hosts: the same entries, the same absolute expiry"

# h2 away while 60 entries go by (the stream keeps about 10).
PORTHOPD_PID=$(fleet_host_pid 2) porthopd_stop || fail "h2 did not stop cleanly"
for i in $(seq 10 69); do echo "203.0.113.$i 3600"; done >"$T/feed"
pub watch add --file "$T/feed" --fleet -c "$T/pub.json" --origin feed >/dev/null
pub watch del 192.0.2.2 --fleet -c "$T/pub.json" --origin ids >/dev/null
wait_until 10 fleet_caught_up 1
first=$(ip netns exec $RNS redis-cli -h $R --json xinfo stream porthop:feed | jq -r '."first-entry"[0]')
last=$(ip netns exec $RNS redis-cli -h $R --json xinfo groups porthop:feed | jq -r '.[] | select(.name == "h2") | ."last-delivered-id"')
[ "${last%-*}" -lt "${first%-*}" ] || [ "$last" \< "$first" ] ||
	fail "the stream was not trimmed past h2 (first $first, h2 at $last)"
fleet_host_start 2 "phf$$-h2" "$T/h2.json"
grep -q "caught up from the snapshot" "$T/h2.log" || fail "h2 did not say it caught up from the snapshot"
wait_until 10 fleet_caught_up 2
fleet_ctl 2 status | grep -q "^fleet stream .*group h2.*lag 0, pending 0" || fail "porthop status does not show the stream: $(fleet_ctl 2 status)"
snap=$(fleet_snapshot $RNS $R)
[ "$(echo "$snap" | wc -l)" -eq 62 ] || fail "the snapshot holds $(echo "$snap" | wc -l) entries, expected 62"
[ "$(fleet_list 2)" = "$snap" ] || fail "h2's list is not the snapshot: $(diff <(fleet_list 2) <(echo "$snap") | head)"
[ "$(fleet_list 1)" = "$snap" ] || fail "h1's list is not the snapshot"
fleet_ctl 2 mapping 203.0.113.40 --json | jq -e '.mapping[0].tcp["22"] > 0' >/dev/null ||
	fail "h2 has no mapping for 203.0.113.40"
fleet_ctl 2 mapping 192.0.2.2 --json >/dev/null 2>&1 && fail "h2 still maps 192.0.2.2"
pass "a host away longer than the stream's retention caught up from the snapshot (62 entries, the delete too)"

# Between the kernel commit and the XACK: XACK taken from porthopd's
# user, so its acknowledgements never land; then kill -9.
ip netns exec $RNS redis-cli -h $R acl setuser ph -xack >/dev/null
pub watch add 192.0.2.50 --fleet -c "$T/pub.json" --ttl 3600 --origin ids >/dev/null
pub watch del 203.0.113.10 --fleet -c "$T/pub.json" --origin feed >/dev/null
h1_has_50() { fleet_list 1 | grep -q '^192\.0\.2\.50 '; }
wait_until 10 h1_has_50
h1_pending() {
	[ "$(ip netns exec $RNS redis-cli -h $R xpending porthop:feed h1 | head -1)" -ge 2 ]
}
wait_until 10 h1_pending
before=$(fleet_list 1)
# When the entry was first added: a refresh keeps it, a new add would
# not (and the restart comes at least a second later).
added() {
	fleet_ctl 1 watch list --json | jq -r '.entries[] | select(.address == "192.0.2.50") | .added'
}
added_before=$(added)
later() { [ "$(date +%s)" -gt "$added_before" ]; }
wait_until 3 later
kill -9 "$(fleet_host_pid 1)"
wait "$(fleet_host_pid 1)" 2>/dev/null || true
ip netns exec $RNS redis-cli -h $R acl setuser ph +xack >/dev/null
fleet_host_start 1 "phf$$-h1" "$T/h1.json"
wait_until 10 fleet_caught_up 1
[ "$(fleet_stream_field 1 redelivered)" -ge 2 ] ||
	fail "h1 read $(fleet_stream_field 1 redelivered) entries again, expected 2 or more"
[ "$(fleet_list 1)" = "$before" ] || fail "h1's list changed across the redelivery: $(diff <(echo "$before") <(fleet_list 1))"
[ "$(fleet_list 1)" = "$(fleet_snapshot $RNS $R)" ] || fail "h1's list is not the snapshot"
[ "$(added)" = "$added_before" ] ||
	fail "192.0.2.50 was added anew ($(added), first $added_before), not refreshed"
fleet_ctl 1 mapping 192.0.2.50 --json | jq -e '.mapping[0].tcp["22"] > 0' >/dev/null ||
	fail "192.0.2.50 has no mapping on h1"
fleet_ctl 1 mapping 203.0.113.10 --json >/dev/null 2>&1 && fail "h1 still maps 203.0.113.10"
[ "$(ip netns exec $RNS redis-cli -h $R xpending porthop:feed h1 | head -1)" -eq 0 ] ||
	fail "h1 still has pending entries"
pass "killed between commit and XACK: applied again on restart (a refresh, a delete of nothing), the same list, then acknowledged"

for i in 1 2; do
	PORTHOPD_PID=$(fleet_host_pid $i) porthopd_stop || fail "h$i exited with an error"
done
