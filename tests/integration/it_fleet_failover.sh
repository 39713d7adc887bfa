#!/usr/bin/env bash
# The fleet through a failover: three protected hosts, a Redis primary, a
# replica and three sentinels, each in a namespace of its own on one
# bridge (plus a publisher and a scanner).  A publisher sends 1,000
# signed operations (watch, unwatch, trigger) with WAIT 1, retrying what
# got no acknowledgement; after 400 the primary is killed (kill -9) and
# the sentinels promote the replica (down-after 1 s); the dead server is
# started again and the sentinels make it the new primary's replica.
# Afterwards every host follows the new primary, its runtime watch list
# equals the snapshot, every acknowledged operation is in force on every
# host, and a watched scanner sees moved ports on all three after a fleet
# trigger naming it.  How long each host took to follow again is said,
# not asserted (bench/fleet.sh measures it).
. "$(dirname "$0")/lib.sh"
. "$SRC/scripts/fleet.sh"
require_tools python3

fleet_debug() {
	[ "$1" -ne 0 ] || return 0
	for f in "$T"/h*.log; do echo "--- $f"; grep -v "watch: " "$f" | tail -n 12; done
	for f in "$T"/sentinel-*/log; do echo "--- $f"; tail -n 8 "$f"; done
} 2>/dev/null
on_exit fleet_debug

P=phv$$
R1=10.77.0.2 R2=10.77.0.3 PUB=10.77.0.100 SCAN=10.77.2.1
fleet_net_up $P
fleet_node $P-r1 $R1
fleet_node $P-r2 $R2
for i in 1 2 3; do
	fleet_node $P-s$i 10.77.0.1$i
	fleet_node $P-h$i 10.77.1.$i
done
fleet_node $P-pub $PUB
fleet_node $P-scan $SCAN

fleet_redis_primary $P-r1 $R1
fleet_redis_replica $P-r2 $R2 $R1
for i in 1 2 3; do
	fleet_sentinel $P-s$i 10.77.0.1$i $R1
done

# One trigger key for the fleet: every entry signed.
head -c 48 /dev/urandom | base64 | head -c 48 >"$T/key"
chmod 600 "$T/key"
REDIS=$(jq -n --arg r $R1 '{host: $r, master_name: "porthop",
	sentinels: [{host: "10.77.0.11", port: 26379}, {host: "10.77.0.12", port: 26379},
		    {host: "10.77.0.13", port: 26379}], connect_timeout_ms: 500}')
STREAM='{"wait_replicas": 1, "wait_timeout_ms": 1000, "resync_interval_seconds": 5}'
for c in h1 h2 h3 pub; do
	fleet_config "$T/$c.json" $c "$REDIS" "$STREAM"
	jq --arg k "$T/key" '.porthopd.trigger_key_file = $k' "$T/$c.json" >"$T/$c.tmp"
	mv "$T/$c.tmp" "$T/$c.json"
done
for i in 1 2 3; do
	fleet_host_start $i $P-h$i "$T/h$i.json" -T
	# The service the scanner looks for.
	ip netns exec $P-h$i python3 -m http.server 80 --bind 10.77.1.$i >/dev/null 2>&1 &
done
pub() {
	ip netns exec $P-pub "$PORTHOP" "$@" -c "$T/pub.json" >/dev/null 2>>"$T/pub.err"
}

all_ready() {
	local i
	for i in 1 2 3; do
		fleet_sentinel_ready $P-s$i 10.77.0.1$i 3 || return 1
	done
}
wait_for 30 "the sentinels to know the replica and each other" all_ready

# The scanner, watched fleet-wide before the run.
pub watch add $SCAN --fleet --origin ids || fail "the scanner's watch was not acknowledged"

# 100 rounds of 10 operations: 8 watches of new addresses, 1 unwatch of
# an address acknowledged earlier, 1 trigger.  What gets no
# acknowledgement (no primary, WAIT short) is sent again, as a real
# publisher would; only acknowledged operations are recorded.
: >"$T/acked-watch"
: >"$T/acked-del"
: >"$T/tried-del"
# The dead primary back, once the sentinels have moved on: they make it
# the new primary's replica, and WAIT 1 can succeed again.
r1_back() {
	if [ -n "${kill_ms:-}" ] && [ ! -e "$T/r1-back" ] &&
		[ "$(ip netns exec $P-s1 redis-cli -h 10.77.0.11 -p 26379 sentinel get-master-addr-by-name porthop | head -1)" = $R2 ]; then
		fleet_redis $P-r1 $R1
		touch "$T/r1-back"
	fi
}
send() {
	local deadline=$((SECONDS + 30))
	until pub "$@"; do
		[ $SECONDS -lt $deadline ] || fail "no acknowledgement for 30 s: $*"
		r1_back
		sleep 0.1
	done
}
for r in $(seq 1 100); do
	if [ "$r" -eq 41 ]; then
		kill_ms=${EPOCHREALTIME/[.,]/}
		kill -9 "$(cat "$T/redis-$R1/pid")"
	fi
	addrs=()
	for k in $(seq 1 8); do addrs+=("203.0.$r.$k"); done
	send watch add "${addrs[@]}" --fleet --origin run --ttl 3600
	printf '%s\n' "${addrs[@]}" >>"$T/acked-watch"
	if [ "$r" -gt 1 ]; then
		d=203.0.$((r - 1)).8
		echo "$d" >>"$T/tried-del"
		send watch del "$d" --fleet --origin run
		echo "$d" >>"$T/acked-del"
	fi
	send publish --stream -q
done
[ -e "$T/r1-back" ] || fail "the sentinels never promoted the replica"
pass "1,000 operations published with WAIT 1 through a kill -9 of the primary ($(grep -c . "$T/pub.err" || true) refusals retried)"

# Every host on the primary the sentinels name now, caught up: R2, or
# on a starved machine (down-after is 1 s) R1 again, should they have
# failed over once more once it was back as R2's replica.
on_new_primary() {
	local i
	PRIM=$(ip netns exec $P-s1 redis-cli -h 10.77.0.11 -p 26379 \
		sentinel get-master-addr-by-name porthop | head -1)
	for i in 1 2 3; do
		[ "$(fleet_stream_field $i primary)" = "$PRIM:6379" ] && fleet_caught_up $i || return 1
	done
}
wait_for 30 "every host to follow the new primary" on_new_primary
for i in 1 2 3; do
	# The first "following" line after the kill.
	up=$(awk -v k="$kill_ms" '/fleet: stream .*group/ { t = $1 * 1000000; if (t > k) { print int((t - k) / 1000); exit } }' "$T/h$i.log")
	echo "# h$i following the new primary ${up:-?} ms after the kill"
done

[ "$PRIM" = "$R2" ] || echo "# the sentinels failed over again, back to $PRIM"
if [ "$PRIM" = "$R1" ]; then PRIM_NS=$P-r1; else PRIM_NS=$P-r2; fi
snap=$(fleet_snapshot "$PRIM_NS" "$PRIM")
for i in 1 2 3; do
	list=$(fleet_list $i)
	[ "$list" = "$snap" ] || fail "h$i's list is not the snapshot: $(diff <(echo "$list") <(echo "$snap") | head -5)"
	# Acknowledged watches nobody tried to delete: in force.
	missing=$(grep -vxF -f "$T/tried-del" "$T/acked-watch" | while read -r a; do
		grep -q "^$a " <<<"$list" || echo "$a"; done)
	if [ -n "$missing" ]; then
		for a in $missing; do
			echo "# $a: snapshot $(ip netns exec "$PRIM_NS" redis-cli -h "$PRIM" hget porthop:feed:snapshot "$a")"
			grep -h "$a" "$T"/h$i.log | head -5
		done
		fail "h$i lacks acknowledged entries: $(echo $missing | head -c 200)"
	fi
	left=$(while read -r a; do grep -q "^$a " <<<"$list" && echo "$a"; true; done <"$T/acked-del")
	[ -z "$left" ] || fail "h$i still holds deleted entries: $(echo $left | head -c 200)"
	[ "$(fleet_stream_field $i refused)" -eq 0 ] || fail "h$i refused entries"
done
n=$(echo "$snap" | wc -l)
pass "every host's list equals the snapshot ($n entries); every acknowledged operation in force on all three"

# A fleet trigger naming the scanner: its ports move on every host, and
# the service answers it on the new port.
port_of() {
	fleet_ctl "$1" mapping $SCAN --json | jq -r '.mapping[0].tcp["80"]'
}
declare -A before
for i in 1 2 3; do before[$i]=$(port_of $i); done
pub publish --stream -m "{\"address\":\"$SCAN\"}" || fail "the trigger was not acknowledged"
moved() {
	local i
	for i in 1 2 3; do [ "$(port_of $i)" != "${before[$i]}" ] || return 1; done
}
wait_for 10 "the scanner's ports to move on every host" moved
reach() {
	ip netns exec $P-scan timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2"
}
for i in 1 2 3; do
	p=$(port_of $i)
	wait_for 5 "the scanner to reach h$i's service on its new port $p" reach 10.77.1.$i "$p"
done
pass "a watched scanner sees moved ports on all three hosts (port 80 at ${before[1]}/${before[2]}/${before[3]}, now $(port_of 1)/$(port_of 2)/$(port_of 3))"

for i in 1 2 3; do
	PORTHOPD_PID=$(fleet_host_pid $i) porthopd_stop || fail "h$i exited with an error"
done
