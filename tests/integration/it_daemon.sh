#!/usr/bin/env bash
# porthopd end to end: start-up shuffle, triggers from `porthop publish`,
# from redis-cli and from SIGUSR1, each read back from the kernel; Redis
# restarts survived; a flood collapsed; a clean stop.
. "$(dirname "$0")/lib.sh"

cfg=$T/configuration.json
write_config "$cfg" 60000 '[{"ip": "10.0.0.3", "tcp_ignore": [1, 2]},
	{"ip": "10.0.0.4", "tcp_ignore": []}]'
start_redis
start_porthopd "$cfg"
m1=$(check_mapping "$cfg")
pass "start-up shuffle applied: 8 pairs in the kernel"

out=$(nsx "$PORTHOP" publish -c "$cfg")
grep -q 'published to "test_channel_1" on 127.0.0.1:6379: 1 subscriber' <<<"$out" \
	|| fail "porthop publish said: $out"
wait_log "shuffle 2 applied (redis)" 1
m2=$(check_mapping "$cfg")
[ "$m1" != "$m2" ] || fail "the mapping did not change after porthop publish"
pass "porthop publish: new valid mapping"

[ "$(nsx redis-cli PUBLISH test_channel_2 anything)" = 1 ] || fail "redis-cli PUBLISH found no subscriber"
wait_log "shuffle 3 applied (redis)" 1
m3=$(check_mapping "$cfg")
[ "$m3" != "$m2" ] || fail "the mapping did not change after redis-cli PUBLISH"
pass "redis-cli PUBLISH on the second channel: new valid mapping"

kill -USR1 "$(cat "$T/porthopd.pid")"
wait_log "shuffle 4 applied (signal)" 1
m4=$(check_mapping "$cfg")
[ "$m4" != "$m3" ] || fail "the mapping did not change after SIGUSR1"
pass "SIGUSR1: new valid mapping"

# Redis goes away: the rules stay, porthopd retries, and after Redis is
# back the next message triggers again.
for round in 1 2 3; do
	stop_redis
	wait_log "retrying" "$round"
	porthopd_alive || fail "porthopd died when Redis stopped"
	[ "$(check_mapping "$cfg")" = "$m4" ] || fail "rules changed while Redis was down"
	start_redis
	wait_log "subscribed to 2 channels" $((round + 1)) 40
	# Messages published meanwhile were lost: one catch-up shuffle.
	wait_log "applied (reconnect)" "$round"
	before=$(log_count "applied (redis)")
	nsx "$PORTHOP" publish -q -c "$cfg"
	wait_log "applied (redis)" $((before + 1))
	m4=$(check_mapping "$cfg")
done
pass "3 Redis restarts survived: a catch-up shuffle after each, triggers work again"

# A flood: 2000 messages in one pipe.  They collapse into far fewer
# shuffles and porthopd stays responsive.
before=$(log_count "applied (redis")
messages=$(status redis.messages)
for i in $(seq 2000); do echo "PUBLISH test_channel_1 m$i"; done \
	| nsx redis-cli >/dev/null
wait_for 20 "porthopd to read the flood" status_at_least redis.messages $((messages + 2000))
kill -USR1 "$(cat "$T/porthopd.pid")"
# (The flood's last shuffle may still wait: the signal is served with it,
# "applied (redis, signal)".)
wait_log "applied (.*signal" 2
after=$(log_count "applied (redis")
[ "$after" -gt "$before" ] || fail "the flood triggered nothing"
[ $((after - before)) -lt 2000 ] || fail "2000 messages made $((after - before)) shuffles; expected them to collapse"
check_mapping "$cfg" >/dev/null
pass "flood of 2000 messages: $((after - before)) shuffles"

stop_porthopd
check_mapping "$cfg" >/dev/null
grep -q "Terminated received, stopping" "$T/porthopd.log" || fail "no stop message"
pass "SIGTERM: clean exit 0, rules stay in force"
