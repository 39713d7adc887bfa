#!/usr/bin/env bash
# Authenticated triggers: with a key configured, unsigned messages,
# messages signed with another key and replays are refused (counted and
# logged, rate-limited); `porthop publish` signs and triggers.  A key file
# others can read is refused at load.
. "$(dirname "$0")/lib.sh"

printf 'a-shared-trigger-key-of-some-length\n' >"$T/trigger.key"
chmod 600 "$T/trigger.key"
printf 'another-key-nobody-configured-here\n' >"$T/other.key"
chmod 600 "$T/other.key"
cfg=$T/configuration.json
write_config "$T/base.json" 20 '[{"ip": "10.0.0.3", "tcp_ignore": [1, 2]}]'
jq --arg k "$T/trigger.key" '.porthopd = {"trigger_key_file": $k, "trigger_window_seconds": 30}' \
	"$T/base.json" >"$cfg"

start_redis
start_porthopd "$cfg"
wait_log "subscribed" 1

# Unsigned, as the reference's launcher sends: refused.
nsx redis-cli PUBLISH test_channel_1 shuffle >/dev/null
wait_log "refused: malformed" 1
[ "$(log_count "applied (redis)")" -eq 0 ] || fail "an unsigned message triggered"
pass "an unsigned message is refused"

# Signed with the configured key: triggers.
nsx "$PORTHOP" publish -q -c "$cfg"
wait_log "applied (redis)" 1
check_mapping "$cfg" >/dev/null
pass "porthop publish -c signs with the configured key and triggers"

# Signed with another key: refused (the log is rate-limited, the refusal
# still counted: the counter says when the message has been read, and
# then no trigger and no shuffle may have come of it).
before=$(log_count "applied (redis)")
triggers=$(status triggers)
nsx "$PORTHOP" publish -q -c "$T/base.json" -k "$T/other.key"
wait_for 10 "the message signed with another key to be refused" metric_above "$(refused bad_mac)" 0
[ "$(status triggers)" -eq "$triggers" ] || fail "a message signed with another key counted as a trigger"
[ "$(log_count "applied (redis)")" -eq "$before" ] || fail "a message signed with another key triggered"
pass "a message signed with another key does not trigger"

# A replay: capture a signed message on the wire and publish it again.
nsx timeout 5 redis-cli SUBSCRIBE test_channel_1 >"$T/captured" &
sub=$!
wait_for 5 "the capturing subscriber" bash -c "grep -q subscribe '$T/captured'"
nsx "$PORTHOP" publish -q -c "$cfg"
wait_log "applied (redis)" $((before + 1))
wait_for 5 "the captured message" grep -q '"mac"' "$T/captured"
msg=$(grep '"mac"' "$T/captured" | tail -n 1)
kill $sub 2>/dev/null || true
triggers=$(status triggers)
nsx redis-cli PUBLISH test_channel_1 "$msg" >/dev/null
wait_for 10 "the replayed message to be refused" metric_above "$(refused replay)" 0
[ "$(status triggers)" -eq "$triggers" ] || fail "a replayed message counted as a trigger"
[ "$(log_count "applied (redis)")" -eq $((before + 1)) ] || fail "a replayed message triggered"
pass "a replayed signed message does not trigger"

porthopd_alive || fail "porthopd died"
stop_porthopd

# A key file others can read: refused at load, exit 78.
chmod 644 "$T/trigger.key"
rc=0
out=$(nsx "$PORTHOPD" -n -c "$cfg" 2>&1) || rc=$?
[ $rc -eq 78 ] || fail "world-readable key: exit $rc"
grep -q "porthopd.trigger_key_file: \"$T/trigger.key\" is readable or writable by others (mode 644)" <<<"$out" \
	|| fail "no clear error for a world-readable key: $out"
pass "a key file others can read is refused with exit 78"
