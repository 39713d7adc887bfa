#!/usr/bin/env bash
# The built-in timer without Redis, and `porthop publish` as the
# reference's launcher: one message, a bounded loop, Ctrl-C, bad options.
. "$(dirname "$0")/lib.sh"

cfg=$T/configuration.json
write_config "$cfg" 20 '[{"ip": "10.0.0.3", "tcp_ignore": [1, 2]}]'

# Timer only: no Redis at all.
start_porthopd "$cfg" --no-redis --interval 1:2
wait_log "applied (timer)" 2 10
check_mapping "$cfg" >/dev/null
grep -q "redis" "$T/porthopd.log" && fail "--no-redis still talked to Redis"
stop_porthopd
pass "--no-redis --interval 1:2: shuffles on the timer"

# Redis down at start: porthopd starts anyway, covered by the start-up
# shuffle, and picks Redis up when it comes.
: >"$T/porthopd.log"
start_porthopd "$cfg"
wait_log "retrying" 1
start_redis
wait_log "subscribed to 2 channels" 1 40
pass "Redis down at start: porthopd starts, then subscribes when Redis comes"

# publish -l 1 -u 1 -n 3: three messages, one second apart.
start=$(date +%s)
out=$(nsx "$PORTHOP" publish -c "$cfg" -l 1 -u 1 -n 3)
[ "$(echo "$out" | grep -c '^published to')" -eq 3 ] || fail "expected 3 publications: $out"
[ $(( $(date +%s) - start )) -ge 2 ] || fail "-l 1 -u 1 did not wait between messages"
wait_log "applied (redis)" 1
pass "porthop publish -l 1 -u 1 -n 3"

# Ctrl-C ends the endless loop cleanly: exit 0, a last line, no trace.
ip netns exec "$NS" "$PORTHOP" publish -c "$cfg" -l 1 -u 2 >"$T/pub.out" 2>&1 &
pub=$!
wait_for 10 "the first publication" grep -q '^published to' "$T/pub.out"
kill -INT $pub
rc=0
wait $pub || rc=$?
[ $rc -eq 0 ] || fail "porthop publish exited $rc on SIGINT: $(cat "$T/pub.out")"
grep -q "^stopped after [0-9]* message" "$T/pub.out" || fail "no closing line: $(cat "$T/pub.out")"
pass "porthop publish -l/-u stops cleanly on Ctrl-C"

# Bad command lines: usage errors exit 64 and say what is wrong.
rc=0; out=$("$PORTHOP" publish -l 3 2>&1) || rc=$?
[ $rc -eq 64 ] && grep -q "\-l and -u go together" <<<"$out" || fail "publish -l alone: $rc $out"
rc=0; out=$("$PORTHOP" publish -p 70000 2>&1) || rc=$?
[ $rc -eq 64 ] && grep -q "expected a port from 1 to 65535" <<<"$out" || fail "publish -p 70000: $rc $out"
rc=0; out=$("$PORTHOPD" --interval 5:2 2>&1) || rc=$?
[ $rc -eq 64 ] && grep -q "expected L:U" <<<"$out" || fail "porthopd --interval 5:2: $rc $out"
rc=0; out=$("$PORTHOP" frobnicate 2>&1) || rc=$?
[ $rc -eq 64 ] && grep -q 'unknown command "frobnicate"' <<<"$out" || fail "porthop frobnicate: $rc $out"
rc=0; out=$(nsx "$PORTHOP" publish -r 127.0.0.1 -p 1 2>&1) || rc=$?
[ $rc -eq 69 ] && grep -q "cannot connect to Redis at 127.0.0.1:1" <<<"$out" || fail "publish to a closed port: $rc $out"
pass "bad command lines: exit 64 (usage) or 69 (unavailable) with the reason"
stop_porthopd
