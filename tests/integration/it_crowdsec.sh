#!/usr/bin/env bash
# The CrowdSec bouncer against a real Local API (crowdsec -no-cs on a copy
# of the system configuration, its own database, inside the test's
# namespace) and a real porthopd: bans of an address and of a range
# arrive with their TTLs, a captcha does not, a deletion removes; the
# watched client gets a mapping; a bouncer restarted after the Local API
# changed, and a porthopd restarted under a running bouncer, converge on
# the Local API's decisions; another origin's entry is never touched.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/detectors.sh"

command -v crowdsec >/dev/null && command -v cscli >/dev/null || {
	echo "skipped: crowdsec is not installed (scripts/deps.sh installs it)"
	exit 77
}
require_tools curl
BOUNCER=$BUILD/porthop-crowdsec
BLOG=$T/bouncer.log

cs=$T/crowdsec
lapi_start "$NS" "$cs"
csx bouncers add porthop-it -o raw >"$T/key"
chmod 600 "$T/key"
pass "local API up, bouncer key made"

# porthopd: native mode, its state in the test's directory.
start_redis
cfg=$T/native.json
native_config "$cfg" <<JSON
{
  "max_port_number": 60000,
  "tcp_ports": [22, 80],
  "watched_addresses": [{"ip": "10.0.0.99"}]
}
JSON
jq --arg d "$T/state" '.porthopd.state_directory = $d' "$cfg" >"$cfg.new"
mv "$cfg.new" "$cfg"
start_porthopd "$cfg"

cat >"$T/crowdsec.json" <<JSON
{
  "api_url": "http://127.0.0.1:8080/",
  "api_key_file": "$T/key",
  "update_frequency_seconds": 1,
  "control_socket": "$T/control.sock"
}
JSON
nsx "$BOUNCER" -n -c "$T/crowdsec.json" || fail "the bouncer's configuration is refused"

start_bouncer() {
	ip netns exec "$NS" "${VALGRIND[@]}" "$BOUNCER" -v -c "$T/crowdsec.json" >>"$BLOG" 2>&1 &
	BOUNCER_PID=$!
}
stop_bouncer() {
	local rc=0
	kill -TERM "$BOUNCER_PID"
	wait "$BOUNCER_PID" || rc=$?
	[ $rc -eq 0 ] || fail "porthop-crowdsec exited with status $rc"
}
bouncer_report() {
	[ "$1" -ne 0 ] && [ -f "$BLOG" ] || return 0
	echo "--- bouncer.log (last 40 lines)"
	tail -n 40 "$BLOG"
	echo "--- local API (last 10 lines)"
	tail -n 10 "$cs/crowdsec.log" 2>/dev/null
}
on_exit bouncer_report

# watch_list ORIGIN: porthopd's entries of ORIGIN, as JSON.
watch_list() {
	ctl watch list --origin "$1" --json
}
# entries: "address ttl_left" of porthopd's entries of origin crowdsec,
# sorted.
entries() {
	watch_list crowdsec |
		jq -r '(.entries? // .) | .[] | "\(.address) \(.ttl_left)"' | sort
}
# addresses: the same, addresses alone, on one line.
addresses() {
	entries | awk '{print $1}' | tr '\n' ' ' | sed 's/ $//'
}
has_addresses() {
	[ "$(addresses)" = "$1" ]
}
ttl_of() {
	entries | awk -v a="$1" '$1 == a {print $2}'
}

start_bouncer
csx decisions add --ip 10.9.0.5 --type ban --duration 1m >>"$cs/cscli.log" 2>&1
csx decisions add --range 10.8.0.0/24 --type ban --duration 2h >>"$cs/cscli.log" 2>&1
csx decisions add --ip 10.9.0.6 --type captcha --duration 1m >>"$cs/cscli.log" 2>&1
WAIT_PID=$BOUNCER_PID wait_for 30 "the two bans in porthopd" \
	has_addresses "10.8.0.0/24 10.9.0.5"
ttl=$(ttl_of 10.9.0.5)
[ "$ttl" -ge 50 ] && [ "$ttl" -le 60 ] || fail "10.9.0.5's TTL is $ttl; expected 50 to 60"
ttl=$(ttl_of 10.8.0.0/24)
[ "$ttl" -ge 7150 ] && [ "$ttl" -le 7200 ] || fail "10.8.0.0/24's TTL is $ttl; expected 7150 to 7200"
grep -q 'types not in decision_types are ignored (first: "captcha"' "$BLOG" ||
	fail "the captcha decision was not said ignored"
pass "an address and a range banned arrive with their TTLs; a captcha is ignored"

# The banned client's view changes: it has a mapping of its own.
ctl mapping 10.9.0.5 >"$T/mapping" || fail "no mapping for 10.9.0.5"
[ -s "$T/mapping" ] || fail "an empty mapping for 10.9.0.5"
pass "10.9.0.5 has a mapping: $(tr '\n' ' ' <"$T/mapping" | cut -c1-120)"

csx decisions delete --ip 10.9.0.5 >>"$cs/cscli.log" 2>&1
WAIT_PID=$BOUNCER_PID wait_for 30 "10.9.0.5's deletion" has_addresses "10.8.0.0/24"
pass "a deleted decision removes its entry"

# Another origin's entry stays through every sync below.
ctl watch add 10.7.0.1 --origin manual >/dev/null || fail "watch add --origin manual refused"

# The bouncer away while the Local API changes: its startup sync deletes
# what the Local API no longer holds and adds what it gained.
stop_bouncer
csx decisions delete --range 10.8.0.0/24 >>"$cs/cscli.log" 2>&1
csx decisions add --ip 10.9.0.7 --type ban --duration 1h >>"$cs/cscli.log" 2>&1
[ "$(addresses)" = "10.8.0.0/24" ] || fail "porthopd's list changed without the bouncer"
start_bouncer
WAIT_PID=$BOUNCER_PID wait_for 30 "the startup sync" has_addresses "10.9.0.7"
pass "a restarted bouncer converges (startup sync: 10.8.0.0/24 gone, 10.9.0.7 in)"

# porthopd restarted under the running bouncer, the Local API changing
# meanwhile: its state file brings back 10.9.0.7, the bouncer's sync
# the rest.
stop_porthopd
mv "$LOG" "$LOG.1"
csx decisions delete --ip 10.9.0.7 >>"$cs/cscli.log" 2>&1
csx decisions add --ip 10.9.0.8 --type ban --duration 1h >>"$cs/cscli.log" 2>&1
WAIT_PID=$BOUNCER_PID wait_for 30 "the bouncer noticing porthopd gone" \
	grep -q "porthopd at $T/control.sock: .*; trying again every round" "$BLOG"
start_porthopd "$cfg"
WAIT_PID=$BOUNCER_PID wait_for 30 "convergence after porthopd's restart" \
	has_addresses "10.9.0.8"
grep -q "porthopd answers again" "$BLOG" || fail "the bouncer did not say porthopd is back"
watch_list manual | grep -q '"10.7.0.1"' ||
	fail "the manual entry was touched"
pass "porthopd restarted under the bouncer: converged; other origins untouched"

# The local API away: what is in force stays.
lapi_stop
WAIT_PID=$BOUNCER_PID wait_for 30 "the bouncer noticing the local API gone" \
	grep -q "local API unreachable" "$BLOG"
[ "$(addresses)" = "10.9.0.8" ] || fail "entries changed while the local API was away"
pass "the local API away: entries kept, backoff"

stop_bouncer
stop_porthopd
pass "the bouncer and porthopd stop cleanly"
