#!/usr/bin/env bash
# fail2ban with adapters/fail2ban/porthop.conf: a real fail2ban-server,
# with a private configuration made here (its socket, database and log in
# $T), watches a test log on the protected host.  Failures of the client
# get it banned, that is watched by porthopd under the origin
# f2b-test_jail (the jail is named Test_Jail: the action lowercases it),
# and nmap from the client's namespace sees the services on moved ports;
# fail2ban's unban gives it the real ports back.  A permanent ban has no
# TTL; stopping fail2ban flushes the jail's entries (and nobody else's);
# starting it again restores the persistent ban from its database.
. "$(dirname "$0")/adapters.sh"
. "$(dirname "$0")/detectors.sh"
require_tools fail2ban-server fail2ban-client

JAIL=Test_Jail
ORIGIN=f2b-test_jail
CONF=$T/fail2ban
F2B_SOCK=$T/f2b.sock
AUTHLOG=$T/auth.log
ADAPTER_LOGS+=("$T/fail2ban.log")

f2b_config "$CONF" "$F2B_SOCK"
cp "$SRC/adapters/fail2ban/porthop.conf" "$CONF/action.d/porthop.conf"
cat >"$CONF/jail.conf" <<EOF
[DEFAULT]
backend = polling
usedns = no
ignoreself = false

[$JAIL]
enabled = true
filter = porthop-test
logpath = $AUTHLOG
maxretry = 3
findtime = 60
bantime = 30
action = porthop[socket="$T/control.sock", porthop="$BUILD/porthop"]
EOF
: >"$AUTHLOG"

f2b() {
	"${HX[@]}" fail2ban-client -c "$CONF" -s "$F2B_SOCK" "$@"
}

start_fail2ban() {
	"${HX[@]}" fail2ban-server -f -x -c "$CONF" -s "$F2B_SOCK" -p "$T/f2b.pid" \
		--logtarget "$T/fail2ban.log" >>"$T/fail2ban.out" 2>&1 &
	F2B_PID=$!
	WAIT_PID=$F2B_PID wait_for 30 "fail2ban's jail $JAIL" f2b status "$JAIL"
}

stop_fail2ban() {
	f2b stop >/dev/null
	wait "$F2B_PID" || fail "fail2ban-server exited with status $?"
}

# banned ADDRESS, not_banned ADDRESS: whether fail2ban's jail lists
# ADDRESS as banned.
banned() {
	f2b status "$JAIL" | awk -v a="$1" '/Banned IP list:/ {
		sub(/.*Banned IP list:/, ""); n = split($0, l, /[ \t]+/)
		for (i = 1; i <= n; i++) if (l[i] == a) found = 1
	} END { exit !found }'
}
not_banned() {
	! banned "$1"
}

# no_errors: fail2ban's log holds no ERROR line (a failed action).  The
# test's own `status JAIL`, asked while the server was still adding the
# jail, is answered with UnknownJailException: not an action's failure.
no_errors() {
	local e
	e=$(grep "ERROR" "$T/fail2ban.log" | grep -v "UnknownJailException('$JAIL')" || true)
	[ -z "$e" ] || fail "fail2ban logged errors: $e"
}

# failure ADDRESS: one failure line for ADDRESS in the jail's log.
failure() {
	echo "$(date '+%Y-%m-%d %H:%M:%S') porthop-test: authentication failure from $1" >>"$AUTHLOG"
}

start_fail2ban
# Someone else's entry, which no fail2ban action may touch.
ctl watch add "$OTHER" --origin manual >/dev/null
expect_real_view "before any failure"

# 1. Three failures: banned, watched with the jail's bantime as its TTL.
for _ in 1 2 3; do failure "$CLIENT"; done
wait_until 20 banned "$CLIENT"
wait_for 20 "$CLIENT watched by $ORIGIN" watched "$CLIENT" "$ORIGIN"
e=$(entry "$CLIENT" "$ORIGIN")
ttl=$(jq '.ttl_left' <<<"$e")
[ "$ttl" != null ] && [ "$ttl" -gt 0 ] && [ "$ttl" -le 30 ] \
	|| fail "the ban's entry should have a TTL of at most the bantime (30): $e"
pass "fail2ban's ban is a runtime entry of $ORIGIN with TTL $ttl: $e"
expect_moved_view "banned by fail2ban"

# 2. fail2ban's unban: the entry goes, the real ports come back.
f2b set "$JAIL" unbanip "$CLIENT" >/dev/null
wait_for 20 "$CLIENT no longer watched by $ORIGIN" unwatched "$CLIENT" "$ORIGIN"
expect_real_view "after fail2ban's unban"
# An unban of an entry that is gone already (porthopd's TTL came first)
# is no error: exit 65, not_watched, taken as done.
f2b set "$JAIL" banip "$CLIENT" >/dev/null
wait_for 20 "$CLIENT watched again" watched "$CLIENT" "$ORIGIN"
ctl watch del "$CLIENT" --origin "$ORIGIN"
f2b set "$JAIL" unbanip "$CLIENT" >/dev/null
wait_until 20 not_banned "$CLIENT"
no_errors
pass "an unban of an entry already gone is no error in fail2ban's log"

# 3. A permanent ban (bantime -1): watched without a TTL.
f2b set "$JAIL" bantime -1 >/dev/null
f2b set "$JAIL" banip "$CLIENT" >/dev/null
wait_for 20 "$CLIENT watched by $ORIGIN (permanent)" watched "$CLIENT" "$ORIGIN"
e=$(entry "$CLIENT" "$ORIGIN")
[ "$(jq '.ttl_left' <<<"$e")" = null ] || fail "a permanent ban's entry has a TTL: $e"
pass "a permanent ban is an entry without a TTL: $e"
expect_moved_view "banned permanently"

# 4. fail2ban stops: the jail's entries go (the manual one stays).
stop_fail2ban
unwatched "$CLIENT" "$ORIGIN" || fail "fail2ban's stop left $CLIENT watched: $(entry "$CLIENT")"
watched "$OTHER" manual || fail "fail2ban's stop removed another origin's entry"
pass "stopping fail2ban flushed $ORIGIN only"
expect_real_view "with fail2ban stopped"

# 5. fail2ban starts again: the persistent ban comes back from its
# database through actionban.
start_fail2ban
wait_for 30 "the restored ban of $CLIENT" watched "$CLIENT" "$ORIGIN"
pass "fail2ban's restart restored the ban: $(entry "$CLIENT" "$ORIGIN")"
expect_moved_view "after fail2ban's restart"
stop_fail2ban
unwatched "$CLIENT" "$ORIGIN" || fail "fail2ban's second stop left $CLIENT watched"
no_errors
stop_porthopd
pass "fail2ban: ban, unban, permanent ban, stop and restart as expected"
