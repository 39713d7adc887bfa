#!/usr/bin/env bash
# Native mode end to end: porthop's own table beside another firewall
# manager's, which stays byte-for-byte unchanged through start, 100
# reshuffles and stop; valid mappings in the maps; one address reshuffled
# alone; an `nft flush ruleset` survived by reconciliation; the table
# removed (or kept) on stop.
. "$(dirname "$0")/lib.sh"

cfg=$T/native.json
native_config "$cfg" <<JSON
{
  "max_port_number": 60000,
  "tcp_ports": [22, 80, 443],
  "udp_ports": [53, 123],
  "watched_addresses": [
    {"ip": "10.0.0.3", "tcp_ignore": [22]},
    {"ip": "10.0.0.4"},
    {"ip": "10.9.0.0/16", "udp_ignore": [123]},
    {"ip": "2001:db8::3"},
    {"ip": "2001:db8:1::/48"}
  ],
  "trusted_addresses": ["10.9.1.0/24"]
}
JSON

# Another manager's table (Docker's, say), there before porthop.
nsx nft -f - <<'NFT'
table ip docker_like {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "docker0" oifname != "docker0" accept
		ip daddr 172.17.0.2 tcp dport 8080 counter accept
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 8080 dnat to 172.17.0.2:80
	}
}
NFT
nsx nft list table ip docker_like >"$T/other.before"

# elements: "address proto port value" for every element of porthop's maps.
elements() {
	nsx nft -j list table inet porthop | jq -r '
		.nftables[] | select(.map) | .map.elem // [] | .[]
		| (.[0].concat[0] | if type == "object" then "\(.prefix.addr)/\(.prefix.len)" else . end)
		  + " \(.[0].concat[1]) \(.[0].concat[2]) \(.[1])"' | sort
}

# check_native: every (entry, protocol, port) pair is in the maps both
# ways, with a redirect that is in range, unused and distinct.
check_native() {
	local els
	els=$(elements)
	jq -r '.nftables_service_configuration as $n | $n.watched_addresses[]
		| .ip as $a
		| ((.tcp_ignore // []) as $i | $n.tcp_ports[] | select(. as $p | $i | index($p) | not) | "\($a) tcp \(.)"),
		  ((.udp_ignore // []) as $i | ($n.udp_ports // [])[] | select(. as $p | $i | index($p) | not) | "\($a) udp \(.)")' \
		"$cfg" >"$T/want"
	echo "$els" | awk -v used=" 22 80 443 53 123 " '
		NR == FNR { want[$1 " " $2 " " $3] = 1; nwant++; next }
		{ m[$1 " " $2 " " $3] = $4; n++ }
		END {
			bad = 0
			for (k in want) {
				split(k, f, " ")
				if (!(k in m)) { print "missing " k; bad = 1; continue }
				r = m[k]
				if (r < 1 || r > 60000 || index(used, " " r " ")) { print "bad redirect " r " for " k; bad = 1 }
				if (seen[f[1] " " f[2] " " r]++) { print "redirect " r " twice for " f[1] " " f[2]; bad = 1 }
				if (m[f[1] " " f[2] " " r] != f[3]) { print "no reverse element for " k; bad = 1 }
			}
			if (n != 2 * nwant) { print "expected " 2 * nwant " elements, found " n; bad = 1 }
			exit bad
		}' "$T/want" - >&2 || fail "the maps do not hold a valid mapping"
	echo "$els" | md5sum | cut -c1-16
}

start_redis
start_porthopd "$cfg"
m1=$(check_native)
nsx nft list table ip docker_like | diff -q "$T/other.before" - >/dev/null \
	|| fail "starting porthop changed another table"
pass "native start: $(elements | wc -l) map elements, the other table untouched"

for i in $(seq 100); do
	kill -USR1 "$(cat "$T/porthopd.pid")"
	wait_log "applied (signal)" "$i"
done
m2=$(check_native)
[ "$m1" != "$m2" ] || fail "100 reshuffles left the mapping as it was"
nsx nft list table ip docker_like | diff -u "$T/other.before" - || fail "100 reshuffles changed another table"
pass "100 reshuffles: valid mappings, the other table byte-for-byte unchanged"

# One address alone: a message naming it.
before=$(elements)
nsx redis-cli PUBLISH test_channel_1 '{"address": "10.9.0.0/16"}' >/dev/null
wait_log "applied (address 10.9.0.0/16;" 1
after=$(elements)
diff <(echo "$before" | grep -v '^10.9.0.0/16 ') <(echo "$after" | grep -v '^10.9.0.0/16 ') >/dev/null \
	|| fail "reshuffling 10.9.0.0/16 changed other addresses"
[ "$(echo "$before" | grep '^10.9.0.0/16 ')" != "$(echo "$after" | grep '^10.9.0.0/16 ')" ] \
	|| fail "reshuffling 10.9.0.0/16 did not change it"
check_native >/dev/null
nsx redis-cli PUBLISH test_channel_1 '{"address": "10.77.0.1"}' >/dev/null
wait_log 'shuffle of "10.77.0.1" (redis) refused: not a watched address' 1
pass "a message naming one address moves that address only; an unknown one is refused"

# An admin flushes the whole ruleset: porthop's table comes back, with the
# mapping that was in force, within the reconcile interval.
m3=$(check_native)
nsx nft flush ruleset
wait_log "reconcile: the rules in force had been removed" 1 10
wait_for 10 "porthop's table" nsx nft list table inet porthop
[ "$(check_native)" = "$m3" ] || fail "the table came back with another mapping"
nsx nft list table ip docker_like >/dev/null 2>&1 && fail "porthop recreated someone else's table"
pass "nft flush ruleset: porthop's table restored by reconciliation, same mapping"

# Someone deletes one of porthop's rules: noticed and repaired too.
h=$(nsx nft -a list chain inet porthop pre_nat | awk '/redirect/ && !h {h = $NF} END {print h}')
nsx nft delete rule inet porthop pre_nat handle "$h"
wait_log "reconcile: the rules in force had been removed" 2 10
[ "$(nsx nft list chain inet porthop pre_nat | grep -c redirect)" -eq 4 ] || fail "the deleted rule was not restored"
pass "a deleted rule of porthop's table is restored"

# Elements alone: one deleted, one foreign added.  The definition is
# intact, the digest of the elements is not: the mapping in force comes
# back, in one transaction.
m4=$(check_native)
k=$(elements | awk '$1 == "10.0.0.4" && $2 == "tcp" && $3 == 80 {print $4}')
nsx nft delete element inet porthop swap4 "{ 10.0.0.4 . tcp . 80 }"
wait_log "reconcile: the rules in force had been removed" 3 10
[ "$(check_native)" = "$m4" ] || fail "a deleted element came back with another mapping"
nsx nft add element inet porthop swap4 "{ 10.0.0.99 . tcp . 22 : 4444 }"
wait_log "reconcile: the rules in force had been removed" 4 10
[ "$(check_native)" = "$m4" ] || fail "a foreign element was not removed"
[ "$(elements | awk '$1 == "10.0.0.4" && $2 == "tcp" && $3 == 80 {print $4}')" = "$k" ] || fail "10.0.0.4 tcp 80 changed"
# Someone else's commit elsewhere changes nothing of porthop's; it is
# checked (and counted) all the same.
checks=$(metric porthop_reconcile_checks_total)
nsx nft 'add table ip someone; add chain ip someone c; add rule ip someone c tcp dport 9999 accept'
wait_for 10 "the check of someone else's commit to be counted" metric_above porthop_reconcile_checks_total "$checks"
[ "$(log_count "reconcile: the rules in force had been removed")" -eq 4 ] \
	|| fail "a change to another table was taken for a change to porthop's"
[ "$(metric porthop_reconciliations_total)" = 4 ] || fail "porthop_reconciliations_total $(metric porthop_reconciliations_total), expected 4"
pass "a deleted or a foreign map element is put back; another table's change is left alone"

# The trusted set's elements: a deleted one is put back (the table
# defined anew), the mapping in force the same.
nsx nft delete element inet porthop trusted4 "{ 10.9.1.0/24 }"
wait_log "reconcile: the rules in force had been removed" 5 10
grep -q "10.9.1.0/24" <<<"$(nsx nft list set inet porthop trusted4)" || fail "the trusted prefix was not put back"
[ "$(check_native)" = "$m4" ] || fail "restoring the trusted set changed the mapping"
pass "a deleted element of the trusted set is put back, the mapping unchanged"

nsx nft -f - <<'NFT'
table ip docker_like {
	chain forward { type filter hook forward priority filter; policy drop; }
}
NFT
nsx nft list table ip docker_like >"$T/other.before"
stop_porthopd
grep -q "table inet porthop removed" "$T/porthopd.log" || fail "no removal logged"
nsx nft list table inet porthop >/dev/null 2>&1 && fail "the table is still there after stop"
nsx nft list table ip docker_like | diff -q "$T/other.before" - >/dev/null || fail "stopping changed another table"
pass "clean stop removes porthop's table and nothing else"

jq '.nftables_service_configuration.remove_table_on_stop = false' "$cfg" >"$T/keep.json"
: >"$T/porthopd.log"
start_porthopd "$T/keep.json"
stop_porthopd
nsx nft list table inet porthop >/dev/null || fail "remove_table_on_stop false: the table is gone"
pass "remove_table_on_stop false: the table stays after stop"

# A trigger that finds the table gone (flushed between two
# reconciliations; here none run) defines it anew with its new mapping
# rather than fail; so does a message naming one address.
jq '.porthopd.reconcile_interval_seconds = 0' "$cfg" >"$T/norec.json"
: >"$T/porthopd.log"
start_porthopd "$T/norec.json"
nsx nft flush ruleset
kill -USR1 "$(cat "$T/porthopd.pid")"
wait_log "applied (signal)" 1
[ "$(log_count "table inet porthop was gone")" -eq 1 ] || fail "no warning that the table was gone"
check_native >/dev/null
nsx nft delete table inet porthop
nsx redis-cli PUBLISH test_channel_1 '{"address": "10.0.0.4"}' >/dev/null
wait_log "applied (address 10.0.0.4;" 1
[ "$(log_count "table inet porthop was gone")" -eq 2 ] || fail "no warning that the table was gone"
check_native >/dev/null
[ "$(log_count "failed")" -eq 0 ] || fail "a trigger failed: $(grep failed "$T/porthopd.log")"
nsx nft delete table inet porthop
stop_porthopd
grep -q "table inet porthop was gone already" "$T/porthopd.log" || fail "stopping with the table gone: $(tail -1 "$T/porthopd.log")"
pass "a trigger that finds the table gone defines it anew, with no reconciliation running; a stop that finds it gone says so"

# untrack_unwatched: its chains and sets in the kernel; a reload that
# turns it off removes them (the table redefined in place), one that
# turns it on again brings them back.
jq '.nftables_service_configuration.untrack_unwatched = true' "$T/norec.json" >"$T/untrack.json"
: >"$T/porthopd.log"
start_porthopd "$T/untrack.json"
[ "$(nsx nft list table inet porthop | grep -c notrack)" -eq 4 ] || fail "untrack_unwatched: expected 4 notrack rules"
# tracked4: the watched networks minus the trusted 10.9.1.0/24, a range
# per entry (touching entries are not merged: runtime entries come and go
# one at a time, each with its own range).
want_tracked='["10.0.0.3","10.0.0.4",{"prefix":{"addr":"10.9.0.0","len":24}},{"range":["10.9.2.0","10.9.255.255"]}]'
[ "$(tracked4)" = "$want_tracked" ] || fail "tracked4: $(tracked4)"
jq '.nftables_service_configuration.untrack_unwatched = false' "$T/norec.json" >"$T/untrack.json"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 1
nsx nft list table inet porthop | grep -E "notrack|raw_|tracked4" && fail "untrack_unwatched off: its rules stayed"
jq '.nftables_service_configuration.untrack_unwatched = true' "$T/norec.json" >"$T/untrack.json"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 2
[ "$(nsx nft list table inet porthop | grep -c notrack)" -eq 4 ] || fail "untrack_unwatched on again: expected 4 notrack rules"
check_native >/dev/null
stop_porthopd
pass "untrack_unwatched: raw chains and watched sets in the kernel, removed and restored by reloads"

# A watched address taken out of tracked4 would no longer be tracked,
# hence not redirected: reconciliation puts it back.
jq '.nftables_service_configuration.untrack_unwatched = true' "$cfg" >"$T/untrack_rec.json"
: >"$T/porthopd.log"
start_porthopd "$T/untrack_rec.json"
m5=$(check_native)
nsx nft delete element inet porthop tracked4 "{ 10.0.0.3 }"
wait_log "reconcile: the rules in force had been removed" 1 10
[ "$(tracked4)" = "$want_tracked" ] || fail "tracked4 not restored: $(tracked4)"
[ "$(check_native)" = "$m5" ] || fail "restoring tracked4 changed the mapping"
stop_porthopd
pass "untrack_unwatched: a watched address deleted from tracked4 is put back"
