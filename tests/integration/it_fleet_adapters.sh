#!/usr/bin/env bash
# The detectors' adapters feeding the fleet stream instead of one host's
# socket: a real fail2ban with adapters/fail2ban/porthop-fleet.conf, a
# real sshguard with porthop-sshguard --fleet (PORTHOP_SSHGUARD_FLEET),
# and porthop-crowdsec with fleet_configuration against a real CrowdSec
# Local API, all in one detector namespace; one Redis and two protected
# hosts, each in a namespace of its own on a bridge.  For each: a ban (a
# block, a decision) puts an entry on the stream that both hosts hold as
# fleet.ORIGIN, with a mapping in their kernel; the unban (release,
# deletion) takes it away on both.
. "$(dirname "$0")/lib.sh"
. "$SRC/scripts/fleet.sh"
. "$(dirname "$0")/detectors.sh"
require_tools fail2ban-server fail2ban-client sshguard unshare setsid
fleet_debug() {
	[ "$1" -ne 0 ] || return 0
	for f in "$T"/h*.log "$T"/fail2ban.log "$T"/sshguard.log "$T"/bouncer.log; do
		[ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
	done
} 2>/dev/null
on_exit fleet_debug

fleet_small phd$$ 2
DET=$P-det
fleet_node $DET 10.77.0.50
ip -n $DET link set lo up
REDIS=$(jq -n --arg r $R '{host: $r}')
for c in h1 h2 det; do fleet_config "$T/$c.json" $c "$REDIS"; done
fleet_host_start 1 $P-h1 "$T/h1.json"
fleet_host_start 2 $P-h2 "$T/h2.json"
DX=(ip netns exec "$DET")

# on_stream ADDRESS ORIGIN: an entry of the stream watches ADDRESS for
# ORIGIN.
on_stream() {
	ip netns exec $P-r redis-cli -h $R --raw xrange porthop:feed - + |
		jq -R 'fromjson? | select(.op == "watch")' |
		jq -e --arg a "$1" --arg o "$2" 'select(.address == $a and .origin == $o)' >/dev/null
}
# in_force I ADDRESS ORIGIN: host I holds ADDRESS as fleet.ORIGIN and has
# a mapping for it in its kernel.
in_force() {
	fleet_list "$1" | grep -q "^$2 $3 " &&
		fleet_ctl "$1" mapping "$2" --json | jq -e '.mapping[0].tcp["22"] > 0' >/dev/null
}
on_both() { in_force 1 "$@" && in_force 2 "$@"; }
off_both() { ! fleet_list 1 | grep -q "^$1 $2 " && ! fleet_list 2 | grep -q "^$1 $2 "; }
# expect_fleet ADDRESS ORIGIN WHO: on the stream and in force on both.
expect_fleet() {
	wait_for 30 "$3's entry for $1 on both hosts" on_both "$1" "$2"
	on_stream "$1" "$2" || fail "$3: no watch of $1 for $2 on the stream"
}

# 1. fail2ban with the fleet action.
F2B=$T/fail2ban
F2B_SOCK=$T/f2b.sock
f2b_config "$F2B" "$F2B_SOCK"
cp "$SRC/adapters/fail2ban/porthop.conf" "$SRC/adapters/fail2ban/porthop-fleet.conf" "$F2B/action.d/"
cat >"$F2B/jail.conf" <<EOF
[DEFAULT]
backend = polling
usedns = no
ignoreself = false

[fleetjail]
enabled = true
filter = porthop-test
logpath = $T/f2b-auth.log
maxretry = 2
findtime = 60
bantime = 600
action = porthop-fleet[config="$T/det.json", porthop="$BUILD/porthop"]
EOF
: >"$T/f2b-auth.log"
f2b() { "${DX[@]}" fail2ban-client -c "$F2B" -s "$F2B_SOCK" "$@"; }
"${DX[@]}" fail2ban-server -f -x -c "$F2B" -s "$F2B_SOCK" -p "$T/f2b.pid" \
	--logtarget "$T/fail2ban.log" >>"$T/fail2ban.out" 2>&1 &
F2B_PID=$!
f2b_stop() { f2b stop >/dev/null 2>&1 || true; wait "$F2B_PID" 2>/dev/null || true; }
on_exit f2b_stop
WAIT_PID=$F2B_PID wait_for 30 "fail2ban's jail" f2b status fleetjail
for _ in 1 2; do
	echo "$(date '+%Y-%m-%d %H:%M:%S') porthop-test: authentication failure from 192.0.2.10" >>"$T/f2b-auth.log"
done
expect_fleet 192.0.2.10 f2b-fleetjail fail2ban
exp1=$(fleet_list 1 | awk '$1 == "192.0.2.10" {print $3}')
[ "$exp1" -gt "$(date +%s)" ] && [ "$exp1" -le $(( $(date +%s) + 600 )) ] ||
	fail "fail2ban's fleet entry should end within the bantime (600 s): expires $exp1"
f2b set fleetjail unbanip 192.0.2.10 >/dev/null
wait_for 30 "fail2ban's unban on both hosts" off_both 192.0.2.10 f2b-fleetjail
if grep "ERROR" "$T/fail2ban.log" | grep -qv "UnknownJailException"; then
	fail "fail2ban logged errors: $(grep ERROR "$T/fail2ban.log")"
fi
pass "fail2ban's ban through porthop-fleet.conf: on the stream, in force on both hosts with the bantime; the unban too"

# 2. sshguard with porthop-sshguard --fleet (through the environment:
# sshguard runs its backend without arguments).
cat >"$T/sshguard.conf" <<EOF
BACKEND="$BUILD/porthop-sshguard"
export PORTHOP_SSHGUARD_FLEET="$T/det.json"
FILES="$T/sg-auth.log"
THRESHOLD=20
BLOCK_TIME=8
DETECTION_TIME=120
EOF
: >"$T/sg-auth.log"
sshguard_start "$DET" "$T/sshguard.conf" "$T/sshguard.log"
sg_stop() { kill -TERM "$SG_PID" 2>/dev/null || true; wait "$SG_PID" 2>/dev/null || true; }
on_exit sg_stop
WAIT_PID=$SG_PID wait_until 20 grep -q "watching sshguard's blocks through the fleet stream" "$T/sshguard.log"
# Polled: sshg-logtail starts at the log's end.
attack() {
	echo "$(date '+%b %e %H:%M:%S') host sshd[4242]: Failed password for root from 192.0.2.20 port 40000 ssh2" >>"$T/sg-auth.log"
	on_both 192.0.2.20 sshguard
}
WAIT_POLL=0.5 WAIT_PID=$SG_PID wait_for 30 "sshguard's block on both hosts" attack
on_stream 192.0.2.20 sshguard || fail "sshguard: no watch of 192.0.2.20 on the stream"
[ "$(fleet_list 1 | awk '$1 == "192.0.2.20" {print $3}')" = 0 ] ||
	fail "sshguard's fleet entry has an expiry (sshguard releases it itself): $(fleet_list 1)"
# sshguard releases the block after BLOCK_TIME (8 s) and a few more.
wait_for 40 "sshguard's release on both hosts" off_both 192.0.2.20 sshguard
pass "sshguard's block through porthop-sshguard --fleet: on the stream, in force on both hosts; its release too"
sg_stop

# 3. porthop-crowdsec with fleet_configuration, against a real Local API
# in the detector's namespace (as it_crowdsec.sh runs it).
if ! command -v crowdsec >/dev/null || ! command -v cscli >/dev/null; then
	echo "crowdsec is not installed: its part skipped (scripts/deps.sh installs it)"
	exit 0
fi
cs=$T/crowdsec
lapi_start "$DET" "$cs"
csx bouncers add porthop-it -o raw >"$T/cskey"
chmod 600 "$T/cskey"
cat >"$T/crowdsec.json" <<JSON
{
  "api_url": "http://127.0.0.1:8080/",
  "api_key_file": "$T/cskey",
  "update_frequency_seconds": 1,
  "fleet_configuration": "$T/det.json"
}
JSON
"${DX[@]}" "$BUILD/porthop-crowdsec" -n -c "$T/crowdsec.json" || fail "the bouncer's fleet configuration is refused"
"${DX[@]}" "$BUILD/porthop-crowdsec" -v -c "$T/crowdsec.json" >>"$T/bouncer.log" 2>&1 &
BOUNCER_PID=$!
bouncer_stop() { kill "$BOUNCER_PID" 2>/dev/null || true; wait "$BOUNCER_PID" 2>/dev/null || true; }
on_exit bouncer_stop
csx decisions add --ip 192.0.2.30 --duration 10m --reason porthop-it >>"$cs/cscli.log" 2>&1
expect_fleet 192.0.2.30 crowdsec "the CrowdSec bouncer"
csx decisions delete --ip 192.0.2.30 >>"$cs/cscli.log" 2>&1
wait_for 30 "the decision's deletion on both hosts" off_both 192.0.2.30 crowdsec
pass "a CrowdSec decision through porthop-crowdsec in fleet mode: on the stream, in force on both hosts; its deletion too"
bouncer_stop

for i in 1 2; do
	PORTHOPD_PID=$(fleet_host_pid $i) porthopd_stop || fail "h$i exited with an error"
done
