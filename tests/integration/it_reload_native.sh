#!/usr/bin/env bash
# Reloads that change native mode's table: a renamed table replaces the
# old one in the same transaction (never both in force); a table too big
# for one libnftables transaction (over 20,000 pairs) is redefined in
# place, its maps never deleted or emptied, when the trusted list changes.
. "$(dirname "$0")/lib.sh"

# native_config FILE TABLE ADDRESSES TRUSTED_JSON: ADDRESSES watched
# addresses (10.0.X.Y) x 1,000 TCP ports.
native_config() {
	{
		echo '{"redis_connection_configuration": {"host": "127.0.0.1", "port": 6379, "db": 0,'
		echo '  "charset": "utf-8", "decode_responses": true},'
		echo ' "redis_subscriber_configuration": {"subscriber_channel_names": ["test_channel_1"]},'
		echo ' "porthopd": {"reconcile_interval_seconds": 0},'
		echo " \"nftables_service_configuration\": {\"max_port_number\": 65535, \"table_name\": \"$2\","
		echo "  \"trusted_addresses\": $4, \"tcp_ports\": [$(seq -s, 1 1000)],"
		echo "  \"watched_addresses\": ["
		for i in $(seq 1 "$3"); do
			[ "$i" -gt 1 ] && echo ","
			echo "{\"ip\": \"10.0.$((i / 250)).$((i % 250 + 1))\"}"
		done
		echo ']}}'
	} >"$1"
}

# count TABLE: map elements in TABLE.
count() {
	nsx nft -j list table inet "$1" | jq '[.nftables[] | select(.map) | .map.elem // [] | length] | add'
}

start_redis

# A renamed table: the old one is gone once the new one is in force.
native_config "$T/a.json" porthop 2 '[]'
start_porthopd "$T/a.json"
[ "$(count porthop)" -eq 4000 ] || fail "expected 4,000 elements in inet porthop"
native_config "$T/a.json" mtd_ports 2 '[]'
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 1
nsx nft list table inet porthop >/dev/null 2>&1 && fail "the old table is still there after the rename"
[ "$(count mtd_ports)" -eq 4000 ] || fail "expected 4,000 elements in inet mtd_ports"
stop_porthopd
nsx nft list table inet mtd_ports >/dev/null 2>&1 && fail "the renamed table was not removed on stop"
pass "a renamed table replaces the old one at reload; the new one is removed on stop"

# 25,000 pairs: the trusted list changes, the table is updated in place.
: >"$T/porthopd.log"
native_config "$T/b.json" porthop 25 '[]'
start_porthopd "$T/b.json"
[ "$(count porthop)" -eq 50000 ] || fail "expected 50,000 elements"
rules_before=$(nsx nft list table inet porthop | grep -c 'map @')
# Deletions only (50,000 element events would overflow the monitor's
# socket); line-buffered, as the monitor is killed.
nsx stdbuf -oL nft monitor destroy >"$T/monitor" 2>&1 &
mon=$!
# Listening once it reports a table of ours coming and going.  Slowly:
# the monitor first dumps the ruleset, and starts over if it changes.
for i in $(seq 30); do
	sleep 1
	nsx nft 'add table inet phprobe; delete table inet phprobe'
	grep -q 'delete table inet phprobe' "$T/monitor" && break
	[ "$i" -lt 30 ] || fail "nft monitor did not start"
done
native_config "$T/b.json" porthop 25 '["10.0.0.9", "10.0.1.0/28"]'
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 1 60
sleep 0.5
kill "$mon"; wait "$mon" 2>/dev/null || true
grep -q "^delete rule inet porthop pre_nat" "$T/monitor" || fail "the monitor saw no rule replaced: $(head -5 "$T/monitor")"
if grep -n -E "^delete (table|map) inet porthop" "$T/monitor"; then
	fail "the table or a map was deleted during the reload"
fi
grep -q "10.0.1.0/28" <<<"$(nsx nft list set inet porthop trusted4)" || fail "the new trusted prefix is missing"
[ "$(count porthop)" -eq 50000 ] || fail "expected 50,000 elements after the reload"
[ "$(nsx nft list table inet porthop | grep -c 'map @')" -eq "$rules_before" ] || fail "the rules changed in number"
pass "25,000 pairs: a new trusted list is applied in place, maps never deleted, 50,000 elements after"

# The same reload when someone has deleted the table meanwhile: defined
# anew, then filled.
nsx nft delete table inet porthop
native_config "$T/b.json" porthop 25 '["10.0.0.9"]'
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 2 60
[ "$(count porthop)" -eq 50000 ] || fail "expected 50,000 elements after the reload of a deleted table"
grep -q "10.0.0.9" <<<"$(nsx nft list set inet porthop trusted4)" || fail "the trusted address is missing"
pass "25,000 pairs: a reload after the table was deleted defines it anew"

# A shuffle that finds it deleted: the map update (large messages, each
# refused) fails for the reason it has, and the table is defined anew.
nsx nft delete table inet porthop
kill -USR1 "$(cat "$T/porthopd.pid")"
wait_log "applied (signal)" 1 60
[ "$(log_count "table inet porthop was gone")" -eq 1 ] || fail "no warning that the table was gone: $(tail -2 "$T/porthopd.log")"
[ "$(count porthop)" -eq 50000 ] || fail "expected 50,000 elements after the shuffle of a deleted table"
stop_porthopd
pass "25,000 pairs: a shuffle after the table was deleted defines it anew"

# untrack_unwatched at 25,000 pairs: tracked4 (the watched addresses
# minus the trusted one) goes in the netlink batch with the maps, and a
# reload that only changes the watched addresses replaces its elements.
tracked4() { nsx nft -j list set inet porthop tracked4 | jq -c '[.nftables[].set.elem // empty | .[]]'; }
: >"$T/porthopd.log"
native_config "$T/c0.json" porthop 25 '["10.0.0.9"]'
jq '.nftables_service_configuration.untrack_unwatched = true' "$T/c0.json" >"$T/c.json"
start_porthopd "$T/c.json"
[ "$(tracked4)" = '[{"range":["10.0.0.2","10.0.0.8"]},{"range":["10.0.0.10","10.0.0.26"]}]' ] || fail "tracked4 at start: $(tracked4)"
native_config "$T/c0.json" porthop 24 '["10.0.0.9"]'
jq '.nftables_service_configuration.untrack_unwatched = true' "$T/c0.json" >"$T/c.json"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 1 60
[ "$(tracked4)" = '[{"range":["10.0.0.2","10.0.0.8"]},{"range":["10.0.0.10","10.0.0.25"]}]' ] || fail "tracked4 after the reload: $(tracked4)"
[ "$(count porthop)" -eq 48000 ] || fail "expected 48,000 elements after the reload"
stop_porthopd
pass "untrack_unwatched at 25,000 pairs: tracked4 filled with the maps, and replaced by a reload"
