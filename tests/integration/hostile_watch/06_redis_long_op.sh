#!/usr/bin/env bash
# docs/watch.md: "A message with op is never a trigger: a malformed one is
# refused".  A watch message of 1024 bytes or more (padding, a long bad
# field) is not parsed at all and runs a full shuffle of every mapping.
. "$(dirname "$0")/common.sh"
start_redis
start_porthopd "$CFG"
before=$(log_count "applied")
pad=$(printf '%*s' 1100 '')
nsx redis-cli publish test_channel_1 "{\"op\":\"watch\",\"address\":\"192.0.2.7\",$pad\"origin\":\"x\"}" >/dev/null
sleep 2
after=$(log_count "applied")
echo "shuffles applied: $before before, $after after"
[ "$after" -eq "$before" ] || fail "a 1.1 KB watch message ran a full shuffle"
pass "long op message refused, no shuffle"
