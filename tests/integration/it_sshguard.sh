#!/usr/bin/env bash
# sshguard with porthop-sshguard as its backend: the real sshguard (its
# script, log tail, parser and blocker) runs on the protected host with a
# configuration made here.  sshguard reads only
# /etc/sshguard/sshguard.conf, so the test's own is bind-mounted there in
# a mount namespace of sshguard's alone: the host's file is never
# changed.  Failed logins of the client in an sshd-style log get it
# blocked, that is watched by porthopd under the origin sshguard, without
# a TTL; nmap from the client's namespace sees moved ports.  sshguard's
# release gives the real ports back; a block sent while porthopd restarts
# is retried until it lands; and when sshguard stops, flushonexit flushes
# what is still blocked (IPv4 and IPv6), and only that.
. "$(dirname "$0")/adapters.sh"
. "$(dirname "$0")/detectors.sh"
require_tools sshguard unshare setsid

ORIGIN=sshguard
AUTHLOG=$T/auth.log
SG_LOG=$T/sshguard.log
ADAPTER_LOGS+=("$SG_LOG")

# BACKEND is run as one path (sshguard checks it with test -x): the
# socket comes through the environment; sshguard.conf is a shell file.
# Two attacks (score 10 each) block; a block lasts 8 s, then sshguard
# releases it within a few seconds more.
cat >"$T/sshguard.conf" <<EOF
BACKEND="$BUILD/porthop-sshguard"
export PORTHOP_SSHGUARD_SOCKET="$T/control.sock"
FILES="$AUTHLOG"
THRESHOLD=20
BLOCK_TIME=8
DETECTION_TIME=120
EOF
: >"$AUTHLOG"

sshguard_start "${P}host" "$T/sshguard.conf" "$SG_LOG"
WAIT_PID=$SG_PID wait_until 20 grep -q "watching sshguard's blocks" "$SG_LOG"

# Someone else's entry, which sshguard's flush must leave alone.
ctl watch add "$OTHER" --origin manual >/dev/null
expect_real_view "before any attack"

# attack ADDRESS [ORIGIN]: one failed login of ADDRESS in the log (sshd's
# own words, as sshg-parser knows them), then whether ORIGIN (sshguard)
# watches it: polled, it attacks until blocked (sshg-logtail starts at
# the log's end, a line written before it opened the file is not seen).
attack() {
	echo "$(date '+%b %e %H:%M:%S') host sshd[4242]: Failed password for root from $1 port 40000 ssh2" >>"$AUTHLOG"
	watched "$1" "${2:-$ORIGIN}"
}

# 1. Blocked: watched without a TTL (sshguard releases it itself).
WAIT_POLL=0.5 WAIT_PID=$SG_PID wait_for 20 "sshguard's block of $CLIENT" attack "$CLIENT"
e=$(entry "$CLIENT" "$ORIGIN")
[ "$(jq '.ttl_left' <<<"$e")" = null ] || fail "sshguard's block has a TTL: $e"
pass "sshguard's block is a runtime entry of $ORIGIN without a TTL: $e"
expect_moved_view "blocked by sshguard"

# 2. sshguard's release (after BLOCK_TIME): the real ports again.
WAIT_PID=$SG_PID wait_for 30 "sshguard's release of $CLIENT" unwatched "$CLIENT" "$ORIGIN"
grep -q "release $CLIENT: no longer watched" "$SG_LOG" || fail "no release in the backend's log"
expect_real_view "after sshguard's release"

# 3. porthopd away when sshguard blocks (a restart): the backend retries
# until porthopd is back (within its 5 s), and the block lands.
stop_porthopd
for _ in 1 2; do
	echo "$(date '+%b %e %H:%M:%S') host sshd[4242]: Failed password for root from $CLIENT port 40000 ssh2" >>"$AUTHLOG"
done
WAIT_PID=$SG_PID wait_until 10 grep -q "block $CLIENT: cannot talk to porthopd.*retrying" "$SG_LOG"
porthopd_start "${P}host" -c "$CFG" -s "$T/control.sock"
wait_for 20 "the control socket" test -S "$T/control.sock"
WAIT_PID=$SG_PID wait_for 20 "the block sent while porthopd restarted" watched "$CLIENT" "$ORIGIN"
! grep -q "block $CLIENT failed" "$SG_LOG" || fail "the backend gave up on the block"
watched "$OTHER" manual || fail "porthopd's restart lost the manual entry"
pass "a block sent while porthopd was stopped was retried until porthopd was back"
expect_moved_view "blocked while porthopd restarted"

# 4. Blocked by IPv4 (still) and IPv6; sshguard stops (SIGTERM, as its
# service's stop sends): flushonexit flushes both, and nothing else.
WAIT_POLL=0.5 WAIT_PID=$SG_PID wait_for 20 "sshguard's block of $CLIENT6" attack "$CLIENT6"
kill -TERM "$SG_PID"
wait "$SG_PID" || true	# the script's status after its "kill 0"
wait_for 20 "the backend's flush at exit" grep -q "flush: 2 entries of origin $ORIGIN no longer watched" "$SG_LOG"
unwatched "$CLIENT" "$ORIGIN" && unwatched "$CLIENT6" "$ORIGIN" \
	|| fail "sshguard's exit left entries of $ORIGIN: $(ctl watch list --origin "$ORIGIN")"
watched "$OTHER" manual || fail "sshguard's flush removed another origin's entry"
pass "sshguard's exit flushed $ORIGIN only"
expect_real_view "with sshguard stopped"
wait_until 10 grep -q "stopped by a signal; exiting" "$SG_LOG"
if grep -E "porthop-sshguard: .*(failed|refused|line [0-9]+:)" "$SG_LOG"; then
	fail "the backend reported failures"
fi
[ "$(grep -c "retrying" "$SG_LOG")" -eq 1 ] || fail "the backend retried more than the block sent while porthopd was stopped"
stop_porthopd
pass "sshguard: block, release, and the flush at exit as expected"
