#!/usr/bin/env bash
# A flood of 100,000 trigger messages (2,000 under valgrind, which runs
# porthopd some fifty times slower): they collapse into few shuffles,
# porthopd's memory stays bounded (peak RSS grows by less than 16 MB), and
# it answers a signal right after.  A signal that comes while a shuffle
# asked for by a message waits out min_shuffle_interval_ms is served by
# that shuffle and named in its log line.  Prints the figures.
. "$(dirname "$0")/lib.sh"
command -v redis-benchmark >/dev/null || fail "redis-benchmark is not installed"

cfg=$T/configuration.json
write_config "$cfg" 60000 '[{"ip": "10.0.0.3", "tcp_ignore": [1, 2]}, {"ip": "10.0.0.4"}]'
jq '.porthopd = {"min_shuffle_interval_ms": 200}' "$cfg" >"$T/c2.json" && mv "$T/c2.json" "$cfg"
start_redis
# Under AddressSanitizer freed memory waits in a quarantine (256 MB by
# default) and would count as growth: keep it small here.  Other builds
# ignore the variable.
ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=1:thread_local_quarantine_size_kb=64" \
	start_porthopd "$cfg"
wait_log "subscribed" 1
pid=$(cat "$T/porthopd.pid")
rss0=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)

N=100000
[ "${PORTHOP_VALGRIND:-0}" = 1 ] && N=2000
start=$(date +%s%N)
nsx redis-benchmark -q -n $N -c 4 -P 16 PUBLISH test_channel_1 flood >"$T/bench.out" 2>&1
took=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q "PUBLISH" "$T/bench.out" || fail "redis-benchmark: $(cat "$T/bench.out")"
# Every message read (none lost), each logged.
wait_for 120 "porthopd to read the flood" status_at_least redis.messages "$N"
wait_log "trigger on channel" $N 120
# A signal: it may join the shuffle the flood's last messages put in
# wait ("redis, signal").
kill -USR1 "$pid"
wait_log "applied (.*signal" 1 120
# One more: after its shuffle nothing of the flood is left waiting.
kill -USR1 "$pid"
wait_log "applied (.*signal" 2 30
rss1=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
shuffles=$(log_count "applied (redis")
check_mapping "$cfg" >/dev/null
echo "flood: $N messages in ${took} ms -> $shuffles shuffles; peak RSS ${rss0} kB before, ${rss1} kB after"
[ "$shuffles" -ge 1 ] || fail "the flood triggered nothing"
[ "$shuffles" -lt 1000 ] || fail "$N messages made $shuffles shuffles; expected them to collapse"
# Under valgrind the RSS is valgrind's shadow memory, not porthopd's: the
# bound is checked by the plain and sanitizer passes.
if [ "${PORTHOP_VALGRIND:-0}" != 1 ]; then
	[ $((rss1 - rss0)) -lt 16384 ] || fail "peak RSS grew by $((rss1 - rss0)) kB under the flood"
fi
pass "$N messages: $shuffles shuffles (min interval 200 ms), peak RSS +$((rss1 - rss0)) kB, still responsive"

# Shuffles at least 5 s apart: a message right after a shuffle waits, and
# a signal meanwhile joins it.
jq '.porthopd.min_shuffle_interval_ms = 5000' "$cfg" >"$T/c2.json" && mv "$T/c2.json" "$cfg"
kill -HUP "$pid"
wait_log "reload applied" 1
kill -USR1 "$pid"
wait_log "applied (.*signal" 3 30
both=$(log_count "applied (redis, signal)")
nsx redis-cli PUBLISH test_channel_1 one >/dev/null
kill -USR1 "$pid"
wait_log "applied (redis, signal)" $((both + 1)) 30
[ "$(log_count "applied (.*signal")" -eq 4 ] || fail "a signal was lost or served twice"
check_mapping "$cfg" >/dev/null
pass "a signal during a pending message shuffle: one shuffle, logged as (redis, signal)"
stop_porthopd
