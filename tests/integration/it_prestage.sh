#!/usr/bin/env bash
# prestage (native mode): 100 shuffles served by switching to the staged
# mapping while a watched client sends UDP through every port, one
# datagram at a time from a fresh socket (a fresh NAT lookup each): every
# datagram is answered, by the mapping in force before the switch or the
# one staged, never by another, and once one has met the new mapping no
# later one meets the old (no mix, no empty maps).  `porthop mapping`
# shows the mapping in force, not the staged one; a standby someone
# flushed is loaded again before it is switched in; a runtime entry goes
# into and out of both generations; a reload while staging leaves a
# complete mapping.  With the probe event feed turned on at a reload,
# prestage stays on, and after each of several switches a watched
# source's probe of a real port is `vacated`, of its redirect port in
# force `moved`, of one the switch left `stale` (porthop events --json).
. "$(dirname "$0")/lib.sh"
. "$SRC/scripts/topology.sh"

P=php$$
topo_up "$P"
H="${P}host"
BAD=${TOPO_ADDR[bad]}
TARGET=${TOPO_ADDR[host]}
MAXP=40
# Every port of the host answers with its own number, so each datagram
# tells which port the maps sent it to.
ip netns exec "$H" "$BUILD/phsvc" serve $(seq -f 'u:%g' 1 $MAXP) &

CFG=$T/prestage.json
jq -n --arg state "$T/state" --argjson max $MAXP --arg bad "$BAD" '{
	redis_connection_configuration: {host: "127.0.0.1", port: 6379, db: 0,
		charset: "utf-8", decode_responses: true},
	redis_subscriber_configuration: {subscriber_channel_names: ["test_channel_1"]},
	nftables_service_configuration: {max_port_number: $max,
		tcp_ports: [22], udp_ports: [1, 2, 3, 4, 5, 6],
		watched_addresses: [{ip: $bad}], prestage: true},
	porthopd: {reconcile_interval_seconds: 1, state_directory: $state}}' >"$CFG"
topo_porthopd "$P" "$CFG"
echo "$PORTHOPD_PID" >"$T/porthopd.pid"
# lib.sh's ctl and status, on the protected host.
# shellcheck disable=SC2034
NS=$H
standby_ready() {
	[ "$(status prestage.standby_ready)" = true ]
}

# map_of GEN: "port value" for the watched client's UDP elements of that
# generation's exact-address IPv4 map.
map_of() {
	local name=swap4
	[ "$1" = 1 ] && name=swap4_b
	ip netns exec "$H" nft -j list map inet porthop "$name" | jq -r --arg a "$BAD" '
		.nftables[] | select(.map) | .map.elem // [] | .[]
		| select(.[0].concat[0] == $a and .[0].concat[1] == "udp")
		| "\(.[0].concat[2]) \(.[1])"' | sort -n
}

# judge OLD NEW PROBES: every probe ("port answer") answered as the old
# or the new mapping says (a port neither maps answers itself), and none
# by the old after one by the new.  Prints "old new" counts.
judge() {
	awk '
		FILENAME == ARGV[1] { old[$1] = $2; next }
		FILENAME == ARGV[2] { new[$1] = $2; next }
		$1 == "round" { next }
		{
			o = ($1 in old) ? old[$1] : $1
			n = ($1 in new) ? new[$1] : $1
			if ($2 == 0) { print "no answer on port " $1 > "/dev/stderr"; bad = 1 }
			else if ($2 != o && $2 != n) { print "port " $1 " answered by " $2 ": neither mapping (old " o ", new " n ")" > "/dev/stderr"; bad = 1 }
			else if (o != n && $2 == n) { seen_new = 1; nn++ }
			else if (o != n && $2 == o) {
				no++
				if (seen_new) { print "port " $1 " met the old mapping after the new one: mixed" > "/dev/stderr"; bad = 1 }
			}
		}
		END { print no + 0, nn + 0; exit bad }' "$@"
}

wait_for 20 "the first mapping staged" standby_ready
# Conntrack entries of the probes' datagrams time out within 2 s.
ip netns exec "$H" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=2 \
	net.netfilter.nf_conntrack_udp_timeout_stream=2
# The mapping command shows the mapping in force only.
g=$(status prestage.generation)
ctl mapping --json | jq -r '.mapping[0].udp | to_entries[] | "\(.key) \(.value)"' | sort -n >"$T/shown"
[ "$(grep -c . "$T/shown")" -eq 6 ] || fail "porthop mapping shows $(grep -c . "$T/shown") UDP pairs, not 6"
awk 'NR == FNR { real[$1] = $2; next } { m[$1] = $2 } END {
	for (p in real) if (m[p] != real[p]) { print "mapping shows " p " -> " real[p] ", in force " m[p]; bad = 1 }
	exit bad }' "$T/shown" <(map_of "$g") >&2 || fail "porthop mapping does not show the mapping in force"
awk 'NR == FNR { real[$1] = $2; next } { m[$1] = $2 } END {
	same = 1; for (p in real) if (m[p] != real[p]) same = 0
	exit same }' "$T/shown" <(map_of $((1 - g))) || fail "porthop mapping shows the staged mapping"
pass "porthop mapping shows the mapping in force, not the staged one"

switches0=$(status prestage.switches)
total_new=0
for i in $(seq 1 100); do
	wait_for 20 "the next mapping staged ($i)" standby_ready
	g=$(status prestage.generation)
	map_of "$g" >"$T/old"
	map_of $((1 - g)) >"$T/new"
	if [ ! -s "$T/old" ] || [ ! -s "$T/new" ]; then
		fail "switch $i: a generation is empty before the switch"
	fi
	rm -f "$T/stop"
	# Source ports of their own each switch (2,000: 50 rounds), used
	# again 25 switches later, long after their conntrack entries (and
	# their NAT) timed out: no datagram meets an entry of before.
	ip netns exec "${P}bad" "$BUILD/phsvc" udprounds "$TARGET" 1 $MAXP "$T/stop" \
		$((10000 + 2000 * (i % 25))) 2000 >"$T/probes" &
	prober=$!
	ctl shuffle >/dev/null
	touch "$T/stop"
	wait "$prober" || fail "switch $i: the prober failed (status $?)"
	[ "$(status prestage.generation)" != "$g" ] || fail "switch $i: the generation did not change"
	counts=$(judge "$T/old" "$T/new" "$T/probes") || {
		cp "$T/probes" /tmp/prestage-probes.failed
		fail "switch $i: a datagram met no mapping, another mapping or a mix"
	}
	# The last round is wholly the new mapping.
	tail -n $((MAXP + 1)) "$T/probes" | judge "$T/old" "$T/new" - | {
		read -r o n
		[ "$o" -eq 0 ] && [ "$n" -gt 0 ]
	} || fail "switch $i: the round after the switch still met the old mapping"
	total_new=$((total_new + ${counts#* }))
done
[ $(($(status prestage.switches) - switches0)) -eq 100 ] ||
	fail "expected 100 switches, status says $(($(status prestage.switches) - switches0))"
[ "$(status prestage.fallbacks)" -eq 0 ] || fail "a shuffle fell back with a standby ready"
pass "100 switches under traffic through every port: every datagram answered by the old or the new mapping, never a mix ($total_new met the new one)"

# Someone flushes the standby: reconciliation drops it, and it is loaded
# again before the next switch, which then puts a whole mapping in force.
wait_for 20 "the next mapping staged" standby_ready
g=$(status prestage.generation)
standby=swap4
[ "$g" = 0 ] && standby=swap4_b
ip netns exec "$H" nft flush map inet porthop "$standby"
[ -z "$(map_of $((1 - g)))" ] || fail "the standby was not flushed"
generation_filled() {
	[ -n "$(map_of "$1")" ]
}
wait_for 20 "the flushed standby loaded again" generation_filled $((1 - g))
wait_for 20 "the standby ready again" standby_ready
[ "$(map_of $((1 - g)) | wc -l)" -eq 12 ] || fail "the standby holds $(map_of $((1 - g)) | wc -l) elements, not 12"
ctl shuffle >/dev/null
[ "$(map_of $((1 - g)) | wc -l)" -eq 12 ] || fail "the mapping switched in is not whole"
pass "a flushed standby is loaded again before it is switched in"

# A runtime entry: in the maps in force and in the standby, loaded whole,
# in its one transaction; then out of both.
# elements_of ADDRESS GEN: that address's elements in that generation.
elements_of() {
	local name=swap4
	[ "$2" = 1 ] && name=swap4_b
	ip netns exec "$H" nft -j list map inet porthop "$name" | jq --arg a "$1" '
		[.nftables[] | select(.map) | .map.elem // [] | .[]
		 | select(.[0].concat[0] == $a)] | length'
}
wait_for 20 "the next mapping staged" standby_ready
ctl watch add 10.0.0.8 >/dev/null
if [ "$(elements_of 10.0.0.8 0)" -ne 14 ] || [ "$(elements_of 10.0.0.8 1)" -ne 14 ]; then
	fail "10.0.0.8 is not in both generations: $(elements_of 10.0.0.8 0), $(elements_of 10.0.0.8 1)"
fi
standby_ready || fail "the standby was dropped by a runtime entry"
ctl watch del 10.0.0.8 >/dev/null
if [ "$(elements_of 10.0.0.8 0)" -ne 0 ] || [ "$(elements_of 10.0.0.8 1)" -ne 0 ]; then
	fail "10.0.0.8 is still in a generation"
fi
pass "a runtime entry goes into and out of both generations, the standby ready throughout"

# A reload while staging (a new watched address): the standby starts over
# under the new configuration; the next switch covers both addresses.
jq '.nftables_service_configuration.watched_addresses += [{ip: "10.0.0.9"}]' "$CFG" >"$T/cfg2"
cp "$T/cfg2" "$CFG"
ctl reload >/dev/null
wait_for 20 "the next mapping staged after the reload" standby_ready
ctl shuffle >/dev/null
g=$(status prestage.generation)
name=swap4
[ "$g" = 1 ] && name=swap4_b
n=$(ip netns exec "$H" nft -j list map inet porthop "$name" | jq '[.nftables[] | select(.map) | .map.elem // [] | .[]] | length')
[ "$n" -eq 28 ] || fail "after the reload and a switch the maps in force hold $n elements, not 28"
pass "a reload restarts staging; the switch after it puts both addresses' mapping in force"

# The probe event feed on (a reload): prestage stays on, the feed's map
# lookups in both generations behind dispatch chains.  After each
# switch, UDP probes from the watched client (a fresh socket, so a fresh
# conntrack entry, each): its real port 1 is vacated, the redirect port
# in force for it moved, the one the switch left stale.
jq '.porthopd.events = {merge_ms: 0}' "$CFG" >"$T/cfg3"
cp "$T/cfg3" "$CFG"
ctl reload >/dev/null
[ "$(status prestage.active)" = true ] || fail "prestage is off with the event feed on"
ip netns exec "$H" nft list chain inet porthop nat_new >/dev/null ||
	fail "no dispatch chain nat_new with the feed and prestage on"
# probe PORT: one UDP datagram from the watched client to PORT.
probe() {
	ip netns exec "${P}bad" bash -c "echo x >/dev/udp/$TARGET/$1" || true
}
# redirect_of GEN PORT: the redirect port of real port PORT in that
# generation.
redirect_of() {
	map_of "$1" | awk -v p="$2" '$1 == p { print $2 }'
}
# event_since SEQ KIND PORT [REAL]: an event of the watched client after
# SEQ of that kind and port (and real port).
event_since() {
	ctl events --json | jq -s -e --argjson s "$1" --arg k "$2" --argjson p "$3" \
		--arg src "$BAD" --arg r "${4:-}" 'any(.[]; .seq > $s and .kind == $k
			and .source == $src and .port == $p and .proto == "udp"
			and ($r == "" or .real_port == ($r | tonumber)))' >/dev/null
}
repairs0=$(status reconciliations)
for i in 1 2 3; do
	wait_for 20 "the next mapping staged (events, $i)" standby_ready
	g=$(status prestage.generation)
	map_of "$g" >"$T/old"
	ctl shuffle >/dev/null
	[ "$(status prestage.generation)" != "$g" ] || fail "events, switch $i: the generation did not change"
	g=$(status prestage.generation)
	map_of "$g" >"$T/new"
	# An old redirect port of a real port (1-6) that is no port of
	# the new mapping: stale.
	old=$(awk 'NR == FNR { cur[$1] = 1; next } $1 <= 6 && !($2 in cur) { print $1, $2; exit }' \
		"$T/new" "$T/old")
	[ -n "$old" ] || fail "events, switch $i: every old redirect port is in the new mapping"
	since=$(ctl events --json | jq -s 'map(.seq) | max // 0')
	redir=$(redirect_of "$g" 1)
	probe 1
	probe "$redir"
	probe "${old#* }"
	wait_for 10 "events, switch $i: vacated of port 1" event_since "$since" vacated 1
	wait_for 10 "events, switch $i: moved of port $redir (real 1)" event_since "$since" moved "$redir" 1
	wait_for 10 "events, switch $i: stale of port ${old#* } (real ${old% *})" \
		event_since "$since" stale "${old#* }" "${old% *}"
	# moved: the mapping in force; stale: the one the switch left.
	gens=$(ctl events --json | jq -s -r --argjson s "$since" '
		[map(select(.seq > $s and .kind == "moved"))[0].generation,
		 map(select(.seq > $s and .kind == "stale"))[0].generation] | "\(.[0]) \(.[1])"')
	[ "${gens% *}" -eq $((${gens#* } + 1)) ] ||
		fail "events, switch $i: moved and stale of generations $gens, not the new one and the one before"
done
[ "$(status prestage.fallbacks)" -eq 0 ] || fail "a shuffle fell back with the feed on"
# The switches and the stale entries after them are ours: someone
# else's commit (a table of their own) makes reconciliation compare our
# table, which it finds as we left it.
checks0=$(metric porthop_reconcile_checks_total)
ip netns exec "$H" nft add table inet someone_else
wait_for 10 "a reconciliation's check" metric_above porthop_reconcile_checks_total "$checks0"
[ "$(status reconciliations)" = "$repairs0" ] ||
	fail "reconciliation repaired the table $(($(status reconciliations) - repairs0)) times after the switches"
pass "the event feed with prestage: after 3 switches, vacated, moved and stale probes labelled right (generations too), nothing repaired"

stop_porthopd
