#!/usr/bin/env bash
# Service integration: the systemd unit passes `systemd-analyze verify`
# (and its offline security score is printed); porthopd speaks the notify
# protocol: READY=1 once the start-up shuffle is applied, STATUS lines,
# WATCHDOG=1 at half the interval, RELOADING=1 and STOPPING=1.
. "$(dirname "$0")/lib.sh"

if command -v systemd-analyze >/dev/null; then
	sed -e "s|/usr/sbin/porthopd|$PORTHOPD|g" -e '/^Documentation=/d' \
		"$SRC/debian/porthopd.service" >"$T/porthopd.service"
	out=$(systemd-analyze verify "$T/porthopd.service" 2>&1) || fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify complained: $out"
	score=$(systemd-analyze security --offline=true "$T/porthopd.service" 2>/dev/null \
		| sed -n 's/.*Overall exposure level for porthopd.service: \([0-9.]* [A-Z]*\).*/\1/p')
	pass "systemd-analyze verify: clean; security exposure $score"
	grep -q '^CapabilityBoundingSet=CAP_NET_ADMIN$' "$SRC/debian/porthopd.service" || fail "no capability bound"
	grep -q '^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK$' "$SRC/debian/porthopd.service" || fail "address families not restricted"
else
	echo "systemd-analyze not installed: unit verification skipped"
fi

cfg=$T/configuration.json
write_config "$cfg" 20 '[{"ip": "10.0.0.3", "tcp_ignore": [1, 2]}]'
ip netns exec "$NS" "$BUILD/phsvc" dgram "$T/notify.sock" 20 >"$T/notify.log" &
wait_for 5 "the notify socket" test -S "$T/notify.sock"
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=400000 start_porthopd "$cfg" --no-redis
wait_for 5 "READY=1" grep -q '^READY=1$' "$T/notify.log"
grep -q '^STATUS=3 pairs, 1 shuffles, 0 failures, redis off$' "$T/notify.log" || fail "no STATUS line: $(cat "$T/notify.log")"
wait_for 5 "two watchdog pings" bash -c "[ \$(grep -c '^WATCHDOG=1$' '$T/notify.log') -ge 2 ]"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_for 5 "RELOADING=1" grep -q '^RELOADING=1$' "$T/notify.log"
stop_porthopd
wait_for 5 "STOPPING=1" grep -q '^STOPPING=1$' "$T/notify.log"
pass "sd_notify: READY after the start-up shuffle, STATUS, WATCHDOG, RELOADING, STOPPING"
