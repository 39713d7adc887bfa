#!/usr/bin/env bash
# A fleet host whose maps are full (map_capacity): the stream entries it
# has no room for are refused, counted and acknowledged, and the host
# goes on following the stream (no entry left pending, retried for
# ever); room made by a fleet delete takes the next address.  One Redis
# and one host, each in a namespace of its own on a bridge.
. "$(dirname "$0")/lib.sh"
. "$SRC/scripts/fleet.sh"
on_exit fleet_show_h1

fleet_small phc$$ 1
REDIS=$(jq -n --arg r $R '{host: $r}')
fleet_config "$T/h1.json" h1 "$REDIS"
fleet_config "$T/pub.json" pub "$REDIS"
# 3 TCP services and 10.0.0.3 in the file: map_capacity 2 leaves room for
# one runtime address.
jq '.nftables_service_configuration.map_capacity = 2' "$T/h1.json" >"$T/h1.tmp"
mv "$T/h1.tmp" "$T/h1.json"
pub() { ip netns exec $P-r "$PORTHOP" "$@" -c "$T/pub.json"; }
caught_up() { fleet_caught_up 1; }

fleet_host_start 1 $P-h1 "$T/h1.json"
for a in 192.0.2.1 192.0.2.2 192.0.2.3; do
	pub watch add $a --fleet --ttl 3600 --origin ids >/dev/null
done
wait_until 10 caught_up
[ "$(fleet_list 1 | awk '{print $1}' | tr '\n' ' ')" = "192.0.2.1 " ] ||
	fail "host 1 holds: $(fleet_list 1 | tr '\n' ';')"
[ "$(fleet_stream_field 1 refused)" -ge 2 ] || fail "refused: $(fleet_stream_field 1 refused)"
[ "$(fleet_stream_field 1 retried)" -eq 0 ] || fail "retried: $(fleet_stream_field 1 retried)"
LOG=$T/h1.log log_has "needs 3 pairs and the IPv4 maps have room for 0 more" 2 ||
	fail "no refusal with its reason in the log"
pass "entries past map_capacity refused, counted and acknowledged; the host caught up"

pub watch del 192.0.2.1 --fleet --origin ids >/dev/null
pub watch add 192.0.2.4 --fleet --ttl 3600 --origin ids >/dev/null
holds_new() { [ "$(fleet_list 1 | awk '{print $1}' | tr '\n' ' ')" = "192.0.2.4 " ] && caught_up; }
wait_until 10 holds_new
pass "a fleet delete makes room: the next address is in force"
