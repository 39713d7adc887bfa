#!/usr/bin/env bash
# Hostile: what another root process, a Redis publisher and a watched
# scanner can do with triggers.
#  - Tampering with each object of porthop's table (an address set's
#    element, a map's element, a rule, the trusted set), followed at once
#    by each kind of trigger (Redis, Redis naming an address, SIGUSR1,
#    control shuffle, control shuffle of an address, SIGHUP): the trigger
#    puts the tampering back first and never makes it the new baseline
#    (reconciliation is an hour away here: only the trigger can).
#  - Trigger floods of every kind: address messages collapse and keep
#    min_shuffle_interval_ms; control shuffles are queued inside it.
#  - Untrusted strings in the log: escaped, and rate-limited.
#  - An address inside a watched prefix moves that prefix's mapping.
#  - Reloads while triggers, a pending shuffle and Redis messages are in
#    flight.
#  - The replay table survives a reload that keeps the key.
. "$(dirname "$0")/lib.sh"

cfg=$T/native.json
native_config "$T/base.json" <<JSON
{
  "max_port_number": 60000,
  "tcp_ports": [22, 80, 443],
  "udp_ports": [53],
  "watched_addresses": [
    {"ip": "10.0.0.3"},
    {"ip": "10.0.0.7"},
    {"ip": "10.9.0.0/24"},
    {"ip": "2001:db8::3"},
    {"ip": "2001:db8:1::/48"}
  ],
  "trusted_addresses": ["10.9.9.0/24", "2001:db8:9::/48"]
}
JSON
jq '.porthopd.reconcile_interval_seconds = 3600' "$T/base.json" >"$cfg"

start_redis
start_porthopd "$cfg"
wait_log "subscribed" 1
pid=$(cat "$T/porthopd.pid")
# hup: a reload, waited for.
hup() {
	local n
	n=$(log_count "reload applied")
	kill -HUP "$pid"
	wait_log "reload applied" $((n + 1)) 60
}

# porthop's table without the maps' values (they move with every
# shuffle): the sets' elements, the maps' element counts, every rule.
shape() {
	nsx nft -j list table inet porthop | jq -c '[.nftables[] |
		if .table then {table: .table.name, flags: (.table.flags // [])}
		elif .set then {set: .set.name, elem: (.set.elem // [])}
		elif .map then {map: .map.name, n: ((.map.elem // []) | length)}
		elif .rule then {chain: .rule.chain, expr: .rule.expr}
		elif .chain then {chain: .chain.name}
		else empty end]'
}
baseline=$(shape)
grep -q '"10.0.0.3"' <<<"$baseline" || fail "tracked4 does not list 10.0.0.3: $baseline"

# The table itself (dormant: every chain off), every set, every map and a
# rule in every chain of porthop's table.
tamper() {
	case $1 in
	tracked4) nsx nft delete element inet porthop tracked4 '{ 10.0.0.3 }' ;;
	tracked6) nsx nft delete element inet porthop tracked6 '{ 2001:db8::3 }' ;;
	trusted4) nsx nft add element inet porthop trusted4 '{ 10.0.0.3 }' ;;
	trusted6) nsx nft add element inet porthop trusted6 '{ 2001:db8::3 }' ;;
	swap4) nsx nft delete element inet porthop swap4 '{ 10.0.0.7 . tcp . 22 }' ;;
	swap6) nsx nft delete element inet porthop swap6 '{ 2001:db8::3 . tcp . 22 }' ;;
	net4) nsx nft delete element inet porthop net4 '{ 10.9.0.0/24 . tcp . 22 }' ;;
	net6) nsx nft delete element inet porthop net6 '{ 2001:db8:1::/48 . tcp . 22 }' ;;
	dormant) nsx nft add table inet porthop '{ flags dormant; }' ;;
	pre_nat|pre_stateless|out_stateless|raw_pre|raw_out)
		nsx nft insert rule inet porthop "$1" ip saddr 10.0.0.3 accept ;;
	esac
}

# fire KIND: one trigger, and wait until its shuffle (or reload) is done.
fire() {
	local shuffles
	shuffles=$(status shuffles)
	case $1 in
	redis) nsx redis-cli PUBLISH test_channel_1 shuffle >/dev/null ;;
	redis-address) nsx redis-cli PUBLISH test_channel_1 '{"address": "10.0.0.3"}' >/dev/null ;;
	signal) kill -USR1 "$pid" ;;
	control) ctl shuffle >/dev/null ;;
	control-address) ctl shuffle 10.0.0.3 >/dev/null ;;
	reload) hup; return ;;
	esac
	wait_for 10 "the $1 trigger's shuffle" status_at_least shuffles $((shuffles + 1))
}

targets="dormant tracked4 tracked6 trusted4 trusted6 swap4 swap6 net4 net6 pre_nat pre_stateless out_stateless raw_pre raw_out"
for target in $targets; do
	for kind in redis redis-address signal control control-address reload; do
		repairs=$(status reconciliations)
		tamper $target
		[ "$(shape)" != "$baseline" ] || fail "tampering with $target changed nothing"
		fire $kind
		now=$(shape)
		[ "$now" = "$baseline" ] || fail "$target tampering survived a $kind trigger:
$(diff <(jq . <<<"$baseline") <(jq . <<<"$now") | head -20)"
		[ "$(status reconciliations)" -eq $((repairs + 1)) ] \
			|| fail "$target tampering before a $kind trigger: repair not counted"
	done
	pass "tampering with $target, then each kind of trigger: put back, counted"
done
[ "$(log_count 'applied again before the')" -eq $((6 * $(wc -w <<<"$targets"))) ] \
	|| fail "expected a repair logged for each tampering"
# Quiet triggers cost no repair.
repairs=$(status reconciliations)
fire redis
fire control-address
[ "$(status reconciliations)" -eq "$repairs" ] || fail "a trigger repaired an intact table"
pass "a trigger after no tampering repairs nothing"

# An address inside a watched prefix: the prefix's mapping moves, the
# others stay.
prefix_map() { ctl mapping 10.9.0.0/24 --json | jq -c '.mapping'; }
other_map() { ctl mapping 10.0.0.3 --json | jq -c '.mapping'; }
p0=$(prefix_map)
o0=$(other_map)
nsx redis-cli PUBLISH test_channel_1 '{"address": "10.9.0.5"}' >/dev/null
wait_log "applied (address 10.9.0.0/24; redis)" 1
[ "$(prefix_map)" != "$p0" ] || fail "10.9.0.5 did not move 10.9.0.0/24's mapping"
[ "$(other_map)" = "$o0" ] || fail "10.9.0.5 moved 10.0.0.3's mapping"
ctl shuffle 10.9.0.200 >/dev/null || fail "control shuffle of 10.9.0.200 refused"
rc=0
out=$(ctl shuffle 10.8.0.1 2>&1) || rc=$?
[ $rc -eq 65 ] || fail "an address no entry covers: exit $rc ($out)"
pass "an address inside a watched prefix moves that prefix's mapping; others exit 65"

# Untrusted strings reach the log escaped: a forged line is impossible.
nsx redis-cli PUBLISH test_channel_1 \
	"$(printf '{"address": "x\\nporthopd: shuffle 424242 applied (forged): 11 pairs"}')" >/dev/null
wait_log 'shuffle of "x\\nporthopd: shuffle 424242' 1
grep -q '^porthopd: shuffle 424242' "$T/porthopd.log" && fail "a forged log line got through"
rc=0
out=$(ctl shuffle "$(printf 'y\nporthopd: forged')" 2>&1) || rc=$?
[ $rc -eq 65 ] || fail "a control shuffle of a forged address: exit $rc"
grep -q '^porthopd: forged' "$T/porthopd.log" && fail "a forged log line got through the control socket"
pass "untrusted addresses are logged escaped (Redis and control)"

# A flood of 10,000 messages naming nobody: at most 5 lines every 10 s.
# Any line that names the address counts, whatever it says.
warned=$(log_count "10\.77\.0\.1")
N=10000
[ "${PORTHOP_VALGRIND:-0}" = 1 ] && N=1000
start=$(date +%s)
nsx redis-benchmark -q -n $N -c 2 -P 16 PUBLISH test_channel_1 '{"address": "10.77.0.1"}' >/dev/null
wait_for 120 "the flood read" status_at_least triggers "$N"
windows=$(( ($(date +%s) - start) / 10 + 2 ))
lines=$(( $(log_count "10\.77\.0\.1") - warned ))
[ "$lines" -le $((5 * windows)) ] || fail "$N unknown addresses logged $lines lines"
pass "$N messages naming nobody: $lines warning lines"

# A flood of address triggers keeps min_shuffle_interval_ms: 200 ms.
# last_trigger_served: the log's last trigger is followed by a shuffle.
last_trigger_served() {
	grep -e "trigger on channel" -e "shuffle [0-9]* applied" "$LOG" | tail -n 1 | grep -q applied
}
jq '.porthopd.min_shuffle_interval_ms = 200' "$cfg" >"$T/c2.json" && mv "$T/c2.json" "$cfg"
hup
before=$(status shuffles)
triggers=$(status triggers)
start=$(date +%s%N)
nsx redis-benchmark -q -n $N -c 2 -P 16 PUBLISH test_channel_1 '{"address": "10.0.0.3"}' >/dev/null
wait_for 120 "the flood read" status_at_least triggers $((triggers + N))
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
# The last one may still wait out the interval: count its shuffle too.
wait_for 10 "the shuffle of the flood's last trigger" last_trigger_served
made=$(( $(status shuffles) - before ))
[ "$made" -ge 1 ] || fail "the address flood triggered nothing"
[ "$made" -le $((took_ms / 200 + 3)) ] || fail "$N address triggers in $took_ms ms made $made shuffles (min interval 200 ms)"
pass "$N address triggers in $took_ms ms: $made shuffles, 200 ms apart"

# Control shuffles inside the interval are queued, and say so.
jq '.porthopd.min_shuffle_interval_ms = 3000' "$cfg" >"$T/c2.json" && mv "$T/c2.json" "$cfg"
hup
ctl shuffle >/dev/null
before=$(status shuffles)
for i in $(seq 20); do ctl shuffle 10.0.0.3 >"$T/out" || fail "control shuffle $i failed"; done
grep -q "queued: it runs in" "$T/out" || fail "a control shuffle inside the interval: $(cat "$T/out")"
[ "$(status shuffles)" -eq "$before" ] || fail "control shuffles inside the interval ran at once"
wait_for 10 "the queued shuffle" status_at_least shuffles $((before + 1))
[ "$(status shuffles)" -eq $((before + 1)) ] || fail "20 queued control shuffles made $(( $(status shuffles) - before )) shuffles"
pass "20 control shuffles inside min_shuffle_interval_ms: queued, one shuffle"

# Reloads are shuffles of every entry: inside the interval each is checked
# at once and queued; one is applied.
applied=$(log_count "reload applied")
ctl shuffle >/dev/null
for i in $(seq 20); do ctl reload >"$T/out" || fail "reload $i refused"; done
grep -q "reload checked and queued" "$T/out" || fail "a reload inside the interval: $(cat "$T/out")"
wait_log "reload applied" $((applied + 1)) 10
[ "$(log_count "reload applied")" -eq $((applied + 1)) ] || fail "20 queued reloads applied more than once"
echo '{"not": "a configuration"' >"$T/broken.json"
cp "$cfg" "$T/good.json"
cp "$T/broken.json" "$cfg"
rc=0
ctl reload >/dev/null 2>&1 || rc=$?
[ $rc -eq 78 ] || fail "an invalid configuration inside the interval: exit $rc"
cp "$T/good.json" "$cfg"
pass "20 reloads inside min_shuffle_interval_ms: checked, queued, applied once; an invalid one refused at once"

# Reloads while triggers are in flight: a pending shuffle, a Redis flood,
# the Redis subscription itself replaced (channel renamed) every other
# time.  porthopd keeps serving; sanitizer builds catch a stale callback.
nsx redis-benchmark -q -n $((N * 2)) -c 2 -P 16 PUBLISH test_channel_1 '{"address": "10.0.0.7"}' >/dev/null &
flood=$!
for i in $(seq 10); do
	if [ $((i % 2)) = 0 ]; then
		jq '.redis_subscriber_configuration.subscriber_channel_names = ["test_channel_1", "other"]' "$cfg" >"$T/c3.json"
	else
		jq '.porthopd.min_shuffle_interval_ms = 50' "$cfg" >"$T/c3.json"
	fi
	cp "$T/c3.json" "$T/native.json"
	kill -USR1 "$pid"
	hup
done
wait $flood || true
porthopd_alive || fail "porthopd died under reloads with triggers in flight"
ctl status >/dev/null || fail "porthopd does not answer after the reloads"
[ "$(shape | jq -c '[.[] | select(.set)]')" = "$(jq -c '[.[] | select(.set)]' <<<"$baseline")" ] \
	|| fail "the address sets changed under reloads"
pass "10 reloads during a trigger flood: porthopd serves, its table intact"

# A reload while the Redis connection is down and its retry timer armed:
# the subscription is replaced (new port) under the pending retry.
subscribed=$(log_count "subscribed to")
stop_redis
wait_log "retrying (next in" 1
start_redis 6380
jq '.redis_connection_configuration.port = 6380' "$cfg" >"$T/c3.json" && mv "$T/c3.json" "$cfg"
hup
wait_log "subscribed to" $((subscribed + 1))
served=$(log_count "applied (address 10.0.0.3; redis)")
nsx redis-cli -p 6380 PUBLISH test_channel_1 '{"address": "10.0.0.3"}' >/dev/null
wait_log "applied (address 10.0.0.3; redis)" $((served + 1))
porthopd_alive || fail "porthopd died reloading under a pending Redis retry"
pass "a reload under a pending Redis retry: subscribed on the new port, triggers served"
stop_porthopd
stop_redis 6380
start_redis

# The replay table survives a reload that keeps the key.
printf 'a-shared-trigger-key-0123456789-of-some-length\n' >"$T/trigger.key"
chmod 600 "$T/trigger.key"
jq --arg k "$T/trigger.key" '.porthopd += {"trigger_key_file": $k, "trigger_window_seconds": 30}' \
	"$T/base.json" >"$cfg"
: >"$T/porthopd.log"
start_porthopd "$cfg"
wait_log "subscribed" 1
pid=$(cat "$T/porthopd.pid")
nsx timeout 10 redis-cli SUBSCRIBE test_channel_1 >"$T/captured" &
sub=$!
wait_for 5 "the capturing subscriber" bash -c "grep -q subscribe '$T/captured'"
nsx "$PORTHOP" publish -q -c "$cfg"
wait_log "applied (redis)" 1
wait_for 5 "the captured message" grep -q '"mac"' "$T/captured"
msg=$(grep '"mac"' "$T/captured" | tail -n 1)
kill $sub 2>/dev/null || true
for window in 30 60; do
	jq --argjson w $window '.porthopd.trigger_window_seconds = $w' "$cfg" >"$T/c2.json" && mv "$T/c2.json" "$cfg"
	hup
	replays=$(metric "$(refused replay)")
	nsx redis-cli PUBLISH test_channel_1 "$msg" >/dev/null
	wait_for 10 "the replay refused" metric_above "$(refused replay)" "$replays"
done
[ "$(log_count "applied (redis)")" -eq 1 ] || fail "a replay was accepted after a reload"
pass "a signed trigger captured before a reload is refused as a replay after it (twice)"
stop_porthopd
