#!/usr/bin/env bash
# Reloads that change native mode's table: a renamed table replaces the
# old one in the same transaction (never both in force); in a table too
# big for one libnftables transaction (over 20,000 pairs) a new trusted
# list replaces elements only, and a changed definition is applied in
# place, its sets and maps never deleted or emptied.
. "$(dirname "$0")/lib.sh"

# big_native_config FILE TABLE ADDRESSES TRUSTED_JSON: ADDRESSES watched
# addresses (10.0.X.Y) x 1,000 TCP ports; one generation of maps
# (prestage false: the counts below are of one; prestage's reloads are
# it_prestage's).
big_native_config() {
	{
		echo '{"redis_connection_configuration": {"host": "127.0.0.1", "port": 6379, "db": 0,'
		echo '  "charset": "utf-8", "decode_responses": true},'
		echo ' "redis_subscriber_configuration": {"subscriber_channel_names": ["test_channel_1"]},'
		echo ' "porthopd": {"reconcile_interval_seconds": 0, "state_directory": ""},'
		echo " \"nftables_service_configuration\": {\"max_port_number\": 65535, \"table_name\": \"$2\","
		echo "  \"prestage\": false,"
		echo "  \"trusted_addresses\": $4, \"tcp_ports\": [$(seq -s, 1 1000)],"
		echo "  \"watched_addresses\": ["
		for i in $(seq 1 "$3"); do
			[ "$i" -gt 1 ] && echo ","
			echo "{\"ip\": \"10.0.$((i / 250)).$((i % 250 + 1))\"}"
		done
		echo ']}}'
	} >"$1"
}

# addresses FIRST LAST SKIP: tracked4 as nft lists it for the watched
# addresses 10.0.0.FIRST..LAST but the trusted 10.0.0.SKIP: one element an
# entry (touching entries are not merged: runtime entries come and go one
# at a time, each with its own range).
addresses() {
	seq "$1" "$2" | grep -vx "$3" | jq -Rc '"10.0.0.\(.)"' | jq -sc .
}

# count TABLE: map elements in TABLE.
count() {
	nsx nft -j list table inet "$1" | jq '[.nftables[] | select(.map) | .map.elem // [] | length] | add'
}

start_redis

# A renamed table: the old one is gone once the new one is in force.
big_native_config "$T/a.json" porthop 2 '[]'
start_porthopd "$T/a.json"
[ "$(count porthop)" -eq 4000 ] || fail "expected 4,000 elements in inet porthop"
big_native_config "$T/a.json" mtd_ports 2 '[]'
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 1
nsx nft list table inet porthop >/dev/null 2>&1 && fail "the old table is still there after the rename"
[ "$(count mtd_ports)" -eq 4000 ] || fail "expected 4,000 elements in inet mtd_ports"
stop_porthopd
nsx nft list table inet mtd_ports >/dev/null 2>&1 && fail "the renamed table was not removed on stop"
pass "a renamed table replaces the old one at reload; the new one is removed on stop"

# start_monitor: an nft monitor of deletions in $T/monitor, pid in $mon.
# Deletions only (50,000 element events would overflow the monitor's
# socket); line-buffered, as the monitor is killed.  Listening once it
# reports a table of ours coming and going.  Slowly: the monitor first
# dumps the ruleset, and starts over if it changes.
start_monitor() {
	nsx stdbuf -oL nft monitor destroy >"$T/monitor" 2>&1 &
	mon=$!
	for i in $(seq 30); do
		sleep 1
		nsx nft 'add table inet phprobe; delete table inet phprobe'
		grep -q 'delete table inet phprobe' "$T/monitor" && break
		[ "$i" -lt 30 ] || fail "nft monitor did not start"
	done
}

stop_monitor() {
	# The monitor prints events in order: once a last commit of ours is
	# there, so is every deletion before it.
	nsx nft 'add table inet phfence; delete table inet phfence'
	wait_for 10 "nft monitor to catch up" grep -q 'delete table inet phfence' "$T/monitor"
	kill "$mon"; wait "$mon" 2>/dev/null || true
	# (Not the anonymous sets of the rules replaced, __set0 and on.)
	if grep -n -E "^delete (table inet porthop|(map|set) inet porthop [^_])" "$T/monitor"; then
		fail "the table, a map or a set was deleted during the reload"
	fi
}

# 25,000 pairs: the trusted list changes: the sets' and maps' elements
# are replaced in one transaction, no rule touched.
: >"$T/porthopd.log"
big_native_config "$T/b.json" porthop 25 '[]'
start_porthopd "$T/b.json"
[ "$(count porthop)" -eq 50000 ] || fail "expected 50,000 elements"
rules_before=$(nsx nft list table inet porthop | grep -c 'map @')
start_monitor
big_native_config "$T/b.json" porthop 25 '["10.0.0.9", "10.0.1.0/28"]'
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 1 60
stop_monitor
grep -q "^delete rule" "$T/monitor" && fail "a rule was replaced: $(grep -m3 '^delete rule' "$T/monitor")"
grep -q "10.0.1.0/28" <<<"$(nsx nft list set inet porthop trusted4)" || fail "the new trusted prefix is missing"
[ "$(count porthop)" -eq 50000 ] || fail "expected 50,000 elements after the reload"
pass "25,000 pairs: a new trusted list replaces elements only, no rule, set or map deleted"

# The definition changes (untrack_unwatched turned on): the table is
# redefined in place, its rules replaced, its sets and maps kept; the
# rules that untrack come once tracked4 is filled.
start_monitor
jq '.nftables_service_configuration.untrack_unwatched = true' "$T/b.json" >"$T/b1.json"
cp "$T/b1.json" "$T/b.json"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 2 60
stop_monitor
grep -q "^delete rule inet porthop pre_nat" "$T/monitor" || fail "the monitor saw no rule replaced: $(head -5 "$T/monitor")"
[ "$(count porthop)" -eq 50000 ] || fail "expected 50,000 elements after the reload"
[ "$(nsx nft list table inet porthop | grep -c 'map @')" -eq "$rules_before" ] || fail "the rules changed in number"
[ "$(nsx nft list chain inet porthop raw_pre | grep -c 'notrack')" -eq 2 ] || fail "raw_pre lacks its notrack rules"
[ "$(tracked4)" = "$(addresses 2 26 9)" ] || fail "tracked4 not filled: $(tracked4)"
grep -q "10.0.1.0/28" <<<"$(nsx nft list set inet porthop trusted4)" || fail "the trusted prefix was lost"
pass "25,000 pairs: untrack_unwatched turned on redefines the table in place, maps never deleted, tracked4 filled"

# The same reload when someone has deleted the table meanwhile: defined
# anew, then filled.
nsx nft delete table inet porthop
big_native_config "$T/b.json" porthop 25 '["10.0.0.9"]'
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 3 60
[ "$(count porthop)" -eq 50000 ] || fail "expected 50,000 elements after the reload of a deleted table"
grep -q "10.0.0.9" <<<"$(nsx nft list set inet porthop trusted4)" || fail "the trusted address is missing"
[ "$(log_count "table inet porthop was gone")" -eq 1 ] || fail "no warning that the table was gone before the reload"
pass "25,000 pairs: a reload after the table was deleted defines it anew"

# A shuffle that finds it deleted (someone committed since our apply, so
# porthop's table is checked first): the table is defined anew.
nsx nft delete table inet porthop
kill -USR1 "$(cat "$T/porthopd.pid")"
wait_log "applied (signal)" 1 60
[ "$(log_count "table inet porthop was gone")" -eq 2 ] || fail "no warning that the table was gone: $(tail -2 "$T/porthopd.log")"
[ "$(count porthop)" -eq 50000 ] || fail "expected 50,000 elements after the shuffle of a deleted table"
stop_porthopd
pass "25,000 pairs: a shuffle after the table was deleted defines it anew"

# untrack_unwatched at 25,000 pairs: tracked4 (the watched addresses
# minus the trusted one) goes in the netlink batch with the maps, and a
# reload that only changes the watched addresses replaces its elements.
: >"$T/porthopd.log"
big_native_config "$T/c0.json" porthop 25 '["10.0.0.9"]'
jq '.nftables_service_configuration.untrack_unwatched = true' "$T/c0.json" >"$T/c.json"
start_porthopd "$T/c.json"
[ "$(tracked4)" = "$(addresses 2 26 9)" ] || fail "tracked4 at start: $(tracked4)"
big_native_config "$T/c0.json" porthop 24 '["10.0.0.9"]'
# (Reconciliation on from here.)
jq '.nftables_service_configuration.untrack_unwatched = true | .porthopd.reconcile_interval_seconds = 1' "$T/c0.json" >"$T/c.json"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 1 60
want=$(addresses 2 25 9)
[ "$(tracked4)" = "$want" ] || fail "tracked4 after the reload: $(tracked4)"
[ "$(count porthop)" -eq 48000 ] || fail "expected 48,000 elements after the reload"
pass "untrack_unwatched at 25,000 pairs: tracked4 filled with the maps, and replaced by a reload"

# Above 20,000 pairs the maps' elements go unchecked, the address sets
# not: a watched range deleted from tracked4 and the trusted address from
# trusted4 are put back, the sets alone.
nsx nft "delete element inet porthop tracked4 { $(seq -s, -f '10.0.0.%g' 10 25) }; delete element inet porthop trusted4 { 10.0.0.9 }"
wait_log "reconcile: the rules in force had been removed" 1 30
[ "$(tracked4)" = "$want" ] || fail "tracked4 not restored: $(tracked4)"
grep -q "10.0.0.9" <<<"$(nsx nft list set inet porthop trusted4)" || fail "trusted4 not restored"
[ "$(count porthop)" -eq 48000 ] || fail "expected 48,000 elements after the repair"
pass "25,000 pairs: deleted tracked4 and trusted4 elements put back by reconciliation"

# The maps' elements, too many for a digest, are asked for one by one:
# an element given another value, and one deleted, are put back.
# (nft 1.0.6 prints `get element` as text whatever -j says.)
value() { sed -n 's/.*elements = { .* : \([0-9]*\) }.*/\1/p' <<<"$(nsx nft get element inet porthop swap4 "{ $1 }" 2>/dev/null)"; }
v1=$(value "10.0.0.2 . tcp . 5"); v2=$(value "10.0.0.3 . tcp . 7")
[ -n "$v1" ] && [ -n "$v2" ] && [ "$v1" != 5 ] || fail "no value for the elements: '$v1' '$v2'"
nsx nft "delete element inet porthop swap4 { 10.0.0.2 . tcp . 5 }; add element inet porthop swap4 { 10.0.0.2 . tcp . 5 : 5 }"
wait_log "reconcile: the rules in force had been removed" 2 30
[ "$(value "10.0.0.2 . tcp . 5")" = "$v1" ] || fail "the changed element was not put back: $(value "10.0.0.2 . tcp . 5"), expected $v1"
nsx nft "delete element inet porthop swap4 { 10.0.0.3 . tcp . 7 }"
wait_log "reconcile: the rules in force had been removed" 3 30
[ "$(value "10.0.0.3 . tcp . 7")" = "$v2" ] || fail "the deleted element was not put back: $(value "10.0.0.3 . tcp . 7")"
[ "$(count porthop)" -eq 48000 ] || fail "expected 48,000 elements after the repairs"
# Another table's change: asked for, all there, nothing applied.
checks=$(metric porthop_reconcile_checks_total)
nsx nft 'add table inet other'
wait_for 10 "the check of someone else's commit" metric_above porthop_reconcile_checks_total "$checks"
[ "$(log_count "reconcile: the rules in force had been removed")" -eq 3 ] || fail "another table's change was taken for ours"
stop_porthopd
pass "25,000 pairs: a changed and a deleted map element put back, another table's change left alone"

# 150,000 pairs: the check by key goes 100,000 pairs per reconciliation,
# so as not to hold porthopd for long; an element of the last address,
# deleted, is found by the second step and put back.
: >"$T/porthopd.log"
big_native_config "$T/d0.json" porthop 150 '[]'
jq '.porthopd.reconcile_interval_seconds = 1' "$T/d0.json" >"$T/d.json"
start_porthopd "$T/d.json" -v
# The sets' digest is taken with the start-up shuffle: the first
# reconciliation that sees the deletion below compares with it (and does
# not take the sets for someone else's).
grep -q "shuffle 1 applied (start): .*, digest" "$LOG" || fail "no digest taken at start: $(grep -m1 "shuffle 1 applied" "$LOG")"
# The value from porthopd's own mapping: `nft get element` loads the
# whole map first, seconds at this size.
mapping151() { nsx "$PORTHOP" mapping 10.0.0.151 --json -s "$T/control.sock"; }
before=$(mapping151)
v=$(jq -r '.mapping[0].tcp["5"]' <<<"$before")
[ -n "$v" ] && [ "$v" != null ] || fail "no mapping for 10.0.0.151 port 5: $before"
nsx nft "delete element inet porthop swap4 { 10.0.0.151 . tcp . 5 }"
# (Slow under valgrind: a step's 200,000 answers are parsed by porthopd.)
wait_log "reconcile: the rules in force had been removed" 1 180
[ "$(log_count "more of the maps next time")" -ge 1 ] || fail "the check did not go in steps: $(grep reconcile "$T/porthopd.log" | head -3)"
[ "$(value "10.0.0.151 . tcp . 5")" = "$v" ] || fail "the deleted element was not put back with its value $v"
[ "$(mapping151)" = "$before" ] || fail "the mapping changed with the repair"
stop_porthopd
pass "150,000 pairs: the maps checked by key in two steps, a deleted element of the last address put back"
