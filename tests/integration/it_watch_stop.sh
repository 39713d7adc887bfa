#!/usr/bin/env bash
# Stopping porthopd (SIGTERM) and killing it (kill -9) while `watch add`
# requests keep coming, some waiting for their group commit: a restart
# restores every add that was acknowledged, and porthopd's exit is clean
# (under PORTHOP_VALGRIND=1 or a sanitizer build: no use of a freed timer
# while the last groups are committed, no control connection left owing
# its reply).
. "$(dirname "$0")/lib.sh"

STATE=$T/state
cfg=$T/watch.json
watch_config "$cfg"

# adds ROUND: watch adds one after the other until killed, each
# acknowledged address appended to $T/acked.
adds() {
	local i=0
	while :; do
		i=$((i + 1))
		if ctl watch add "198.18.$1.$((i % 250 + 1))" --origin "r$1" \
			--ttl 3600 >/dev/null 2>&1; then
			echo "198.18.$1.$((i % 250 + 1))" >>"$T/acked"
		fi
	done
}

bg=
stop_adds() { [ -z "$bg" ] || kill "$bg" 2>/dev/null || true; }
on_exit stop_adds
start_redis
: >"$T/acked"
for round in 1 2 3 4 5 6; do
	rm -f "$T/control.sock"
	start_porthopd "$cfg"
	adds $round &
	bg=$!
	# Let some groups be committed, then stop in the middle of others.
	wait_for 20 "adds acknowledged in round $round" \
		grep -q "^198\.18\.$round\." "$T/acked"
	sleep 0.$((RANDOM % 3 + 1))
	if [ $((round % 2)) -eq 0 ]; then
		kill -9 "$(cat "$T/porthopd.pid")"
		wait "$(cat "$T/porthopd.pid")" 2>/dev/null || true
	else
		stop_porthopd
	fi
	stop_adds
	wait "$bg" 2>/dev/null || true
	bg=
done
rm -f "$T/control.sock"
start_porthopd "$cfg"
ctl watch list --json | jq -r '.entries[].address' | sort -u >"$T/listed"
sort -u "$T/acked" >"$T/acked.sorted"
missing=$(comm -23 "$T/acked.sorted" "$T/listed" | head -5)
[ -z "$missing" ] || fail "acknowledged but not restored: $missing"
stop_porthopd
pass "SIGTERM and kill -9 during adds: $(wc -l <"$T/acked.sorted") acknowledged adds all restored, clean exits"
