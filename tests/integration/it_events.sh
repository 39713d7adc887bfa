#!/usr/bin/env bash
# The probe event feed end to end, in the demo's topology with real nmap
# scans and a crafted SYN (nping): an unwatched scanner's probes, its
# automatic watching once it crosses the threshold, its next scan seeing
# the moved picture (moved and vacated events), a stale port after a
# shuffle (stale event, the autowatch entry's TTL started again), a
# watched prefix's stale port (an address inside it), a UDP
# probe over IPv6, a short flood; every kind read back from `porthop events`, the log,
# the Redis stream and the hook's output; metrics per kind.
. "$(dirname "$0")/lib.sh"
# Under valgrind porthopd reads the kernel's nflog queue far more slowly
# than a 1,000-port scan fills it: the events this test waits for come
# late or are dropped (counted).  The plain and sanitizer runs cover it.
if [ "${PORTHOP_VALGRIND:-0}" = 1 ]; then
	echo "it_events: skipped under valgrind (see the comment)"
	exit 77
fi
require_tools nmap nping hping3
. "$SRC/scripts/topology.sh"

P=phe$$
topo_up "$P"
H="${P}host"
GOOD=${TOPO_ADDR[good]}
TARGET=${TOPO_ADDR[host]}
topo_services "$P" "$BUILD/phsvc"

HOOK_OUT=$T/hook.out
cat >"$T/hook.sh" <<SH
#!/bin/sh
cat >>"$HOOK_OUT"
SH
chmod 755 "$T/hook.sh"
topo_config_native "$T/base.json"
jq --arg state "$T/state" --arg hook "$T/hook.sh" '
	.nftables_service_configuration.max_port_number = 2000
	| .porthopd.state_directory = $state
	| .porthopd.events = {merge_ms: 300, redis_stream: "porthop:events",
			      hook: [$hook], hook_per_minute: 6000}
	| .porthopd.autowatch = {ports: 15, seconds: 300, ttl_seconds: 600}' \
	"$T/base.json" >"$T/events.json"
CFG=$T/events.json
topo_porthopd "$P" "$CFG"
echo "$PORTHOPD_PID" >"$T/porthopd.pid"
ctl() {
	local cmd=$1
	shift
	ip netns exec "$H" "$PORTHOP" "$cmd" -s "$T/control.sock" "$@"
}

# events_of KIND [SOURCE]: the events of that kind in the ring, as JSON
# lines.
events_of() {
	ctl events --json | jq -c --arg k "$1" --arg s "${2:-}" \
		'select(.kind == $k and ($s == "" or .source == $s))'
}
has_event() {
	[ -n "$(events_of "$@")" ]
}
# some KIND SOURCE FILTER [JQ ARGS...]: whether an event of that kind and
# source matches FILTER (a jq boolean).
some() {
	local k=$1 s=$2 f=$3
	shift 3
	events_of "$k" "$s" | jq -s -e "$@" "any(.[]; $f)" >/dev/null
}
stream_has() {
	ip netns exec "$H" redis-cli --raw XRANGE porthop:events - + |
		grep -F "\"kind\":\"$1\"" | grep -F "\"source\":\"$2\"" >/dev/null
}
# (No grep -q at the end of these pipes: its early exit would break the
# pipe of the grep before it, and pipefail would call that a miss.)
hook_has() {
	grep -F "\"kind\":\"$1\"" "$HOOK_OUT" 2>/dev/null | grep -F "\"source\":\"$2\"" >/dev/null
}
log_event_has() {
	grep -F "event {" "$LOG" | grep -F "\"kind\":\"$1\"" | grep -F "\"source\":\"$2\"" >/dev/null
}
# everywhere KIND SOURCE: the event is in the ring, the log, the stream
# and the hook's output.
everywhere() {
	wait_for 10 "$1 event of $2 in porthop events" has_event "$1" "$2"
	wait_for 10 "$1 event of $2 in the log" log_event_has "$1" "$2"
	wait_for 10 "$1 event of $2 in the Redis stream" stream_has "$1" "$2"
	wait_for 10 "$1 event of $2 from the hook" hook_has "$1" "$2"
}
watched_by_autowatch() {
	ctl watch list --json | jq -e --arg a "$1" \
		'any(.entries[]; .address == $a and .origin == "autowatch")' >/dev/null
}

# 1. An unwatched scanner: 1,000 ports, a SYN scan.  It is caught.
ip netns exec "${P}good" nmap -sS -p1-1000 -n -Pn -T5 --max-retries 1 \
	"$TARGET" >/dev/null 2>&1
everywhere probe "$GOOD"
wait_for 5 "$GOOD watched by autowatch" watched_by_autowatch "$GOOD"
log_has "autowatch: $GOOD probed 15 closed ports" 1 ||
	fail "no autowatch line in the log"
n=$(events_of probe "$GOOD" | jq -s 'length')
[ "$n" -ge 15 ] || fail "only $n probe events from $GOOD"
# Each probe event names a closed port, no real port, a count.
some probe "$GOOD" '.real_port != null or .count < 1 or .proto != "tcp" or
	.port <= 5' && fail "a probe event with a real port, no count or a service port"
# (untrack_unwatched "auto", untracking here: the scanner's probes came
# through the raw_pre rule that untracks it, to ev_untracked.)
ip netns exec "$H" nft list chain inet porthop raw_pre | grep -F "goto ev_untracked" >/dev/null ||
	fail "raw_pre does not send untracked probes to ev_untracked"
pass "an unwatched nmap SYN scan of 1000 ports: probe events, watched by autowatch"

# 2. Its next scan sees the moved picture: the redirect ports in force
# for it are open, the real ports closed; moved and vacated events.
want=$(topo_redirects "$P" "$GOOD" | awk '{print $2}' | sort -n | tr '\n' ' ')
[ -n "$want" ] || fail "no mapping in force for $GOOD"
seen=$(ip netns exec "${P}good" nmap -sS -p1-2000 -n -Pn -T5 --max-retries 2 \
	-oG - "$TARGET" 2>/dev/null | awk -F'Ports: ' '/Ports:/ {
		n = split($2, p, ", ")
		for (i = 1; i <= n; i++) { split(p[i], f, "/"); sub(/^ +/, "", f[1])
			if (f[2] == "open") print f[1] } }' | sort -n | tr '\n' ' ')
[ "$seen" = "$want" ] || fail "the next scan saw open \"$seen\", expected the moved ports \"$want\""
everywhere moved "$GOOD"
everywhere vacated "$GOOD"
# A moved event names the real port its redirect port leads to.
pair=$(topo_redirects "$P" "$GOOD" | head -n1)
real=${pair% *}
redir=${pair#* }
moved_to_real() {
	some moved "$GOOD" '.port == $p and .real_port == $r' \
		--argjson p "$redir" --argjson r "$real"
}
vacated_real() {
	some vacated "$GOOD" '.port == $r and .real_port == $r' --argjson r "$real"
}
wait_for 10 "a moved event of port $redir leading to $real" moved_to_real
wait_for 10 "a vacated event of port $real" vacated_real
pass "its next scan sees the moved ports ($want); moved and vacated events"

# 3. A shuffle of its entry: its old redirect port is stale.  A crafted
# SYN to it is a stale event with the real port it led to, and the
# autowatch entry's TTL starts again.
gen_before=$(events_of moved "$GOOD" | jq -s 'map(.generation) | max')
ttl_left() {
	ctl watch list --json | jq --arg a "$GOOD" '.entries[] | select(.address == $a) | .ttl_left'
}
# The TTL runs down a while first, so that "started again" is told from
# "not yet run down" however slowly the steps below go (8 s of margin).
ttl_run_down() { [ "$(ttl_left)" -le 592 ]; }
wait_for 15 "the TTL to run down to 592 s" ttl_run_down
ctl shuffle "$GOOD" >/dev/null
refreshed0=$(metric porthop_autowatch_refreshed_total)
ip netns exec "${P}good" nping --send-ip --tcp -p "$redir" --flags syn -c 3 --delay 100ms \
	"$TARGET" >/dev/null 2>&1 || true
everywhere stale "$GOOD"
stale_labelled() {
	some stale "$GOOD" '.port == $p and .real_port == $r and .generation == $g' \
		--argjson p "$redir" --argjson r "$real" --argjson g "$gen_before"
}
wait_for 10 "a stale event of port $redir (real $real, generation $gen_before)" \
	stale_labelled
wait_for 5 "the autowatch entry refreshed" metric_above \
	porthop_autowatch_refreshed_total "$refreshed0"
[ "$(ttl_left)" -gt 592 ] || fail "the TTL did not start again"
pass "a stale port after a shuffle: stale event (real port, old generation), TTL started again"

# 3b. A watched prefix's old redirect ports are stale too (stalenet4, an
# interval set): a host inside 10.0.0.16/28, a runtime entry; the entry
# shuffled, a crafted SYN to one of its old redirect ports is a stale
# event from that host with the real port it led to.
topo_add_host "$P" pfx 10.0.0.20 fd00:70:68::20
PFX=10.0.0.20
ctl watch add 10.0.0.16/28 --ttl 600 >/dev/null
prefix_pair() {	# "REAL REDIRECT" of the prefix's TCP service ports, the first
	ip netns exec "$H" nft -j list map inet porthop net4 | jq -r '
		.nftables[] | .map? // empty | .elem // [] | .[]
		| select(.[0].concat[0].prefix.addr == "10.0.0.16"
			 and .[0].concat[1] == "tcp" and .[0].concat[2] <= 5)
		| "\(.[0].concat[2]) \(.[1])"' | sort -n | head -n1
}
has_prefix_pair() { [ -n "$(prefix_pair)" ]; }
wait_for 10 "the prefix 10.0.0.16/28 mapped" has_prefix_pair
pair=$(prefix_pair)
preal=${pair% *}
predir=${pair#* }
ctl shuffle "$PFX" >/dev/null
prefix_moved() { [ "$(prefix_pair)" != "$pair" ]; }
wait_for 10 "the prefix's mapping replaced" prefix_moved
ip netns exec "${P}pfx" nping --send-ip --tcp -p "$predir" --flags syn -c 3 --delay 100ms \
	"$TARGET" >/dev/null 2>&1 || true
prefix_stale() {
	some stale "$PFX" '.port == $p and .real_port == $r and .generation > 0' \
		--argjson p "$predir" --argjson r "$preal"
}
wait_for 10 "a stale event of $PFX, port $predir (real $preal)" prefix_stale
pass "a watched prefix's old redirect port: stale event from an address inside it (real port, generation)"

# 4. A UDP probe over IPv6 from an unwatched address (nmap -sU; nping
# 0.7.93 sends IPv6 from ::).
GOOD6=${TOPO_ADDR6[good]}
ip netns exec "${P}good" nmap -6 -sU -p 999 -n -Pn --max-retries 1 \
	"${TOPO_ADDR6[host]}" >/dev/null 2>&1 || true
everywhere probe "$GOOD6"
udp_probe() {
	some probe "$GOOD6" '.proto == "udp" and .port == 999 and .count >= 1'
}
wait_for 10 "a UDP probe event of port 999" udp_probe
pass "a UDP probe over IPv6: a probe event"

# 5. The metrics per kind; nothing dropped in this quiet run.
for k in probe moved vacated stale; do
	metric_above "porthop_events_total{kind=\"$k\"}" 0 ||
		fail "porthop_events_total{kind=\"$k\"} is 0"
done
[ "$(metric porthop_autowatch_added_total)" -ge 1 ] || fail "autowatch_added 0"
for r in socket malformed merge_full stream; do
	[ "$(metric "porthop_events_dropped_total{reason=\"$r\"}")" = 0 ] ||
		fail "events dropped ($r)"
done
# The hook runs 8 children at most: a scan's burst may find them busy.
# Every event either reached it or is counted.
hook_accounts() {
	local total=0 k
	for k in probe moved vacated stale; do
		total=$((total + $(metric "porthop_events_total{kind=\"$k\"}")))
	done
	[ $(( $(grep -c . "$HOOK_OUT") + \
	      $(metric 'porthop_events_dropped_total{reason="hook"}') )) -eq "$total" ]
}
wait_for 15 "every event through the hook or counted" hook_accounts
pass "metrics per kind; no event dropped (the hook's refusals counted)"
# 6. A short flood (hping3, random sources, SYNs to closed ports): the
# kernel's rate limit holds it back and counts it; porthopd stays small
# and serves on.  (bench/events.sh floods a million packets.)
topo_add_host "$P" flood 10.0.0.8 fd00:70:68::8
ip netns exec "$H" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
ip netns exec "${P}flood" ip route add default dev eth0
held0=$(metric 'porthop_events_dropped_total{reason="kernel_limit"}')
ip netns exec "${P}flood" timeout 3 hping3 --flood --rand-source -S -p ++1000 \
	"$TARGET" >/dev/null 2>&1 || true
wait_for 10 "the kernel's limit to hold the flood back" metric_above \
	'porthop_events_dropped_total{reason="kernel_limit"}' $((held0 + 1000))
pid=$(cat "$T/porthopd.pid")
rss=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$pid/status")
# The bound holds for porthopd as built; under ASan or valgrind the peak
# is the instrumentation's (quarantine, shadow memory): said, not checked.
if [ -z "${ASAN_OPTIONS:-}" ] && [ "${PORTHOP_VALGRIND:-0}" != 1 ]; then
	[ "$rss" -lt 65536 ] || fail "porthopd's peak RSS is $rss kB after the flood"
fi
[ "$(metric 'porthop_events_dropped_total{reason="socket"}')" = 0 ] ||
	echo "note: events lost on the way under the flood (counted)"
ctl status --json >/dev/null || fail "porthopd does not answer after the flood"
pass "a flood: held back by the kernel's limit ($(metric 'porthop_events_dropped_total{reason="kernel_limit"}') counted), peak RSS $rss kB"

# 6b. A scanner hidden in a random-source flood: its probes, faster than
# a flood source's, pass its hash bucket's meter and meet a budget of
# their own (ev_probe_hot), so it is caught while the flood goes on.
# (bench/autowatch_count.sh measures how soon.)
topo_add_host "$P" scan3 10.0.0.10 fd00:70:68::10
held0=$(metric 'porthop_events_dropped_total{reason="kernel_limit"}')
ip netns exec "${P}flood" timeout 20 hping3 --flood --rand-source -S -p ++1000 \
	"$TARGET" >/dev/null 2>&1 &
flood_pid=$!
wait_for 10 "the flood held back by the kernel's limit" metric_above \
	'porthop_events_dropped_total{reason="kernel_limit"}' $((held0 + 1000))
ip netns exec "${P}scan3" nmap -sS -p1-1000 -n -Pn -T5 --max-retries 0 \
	"$TARGET" >/dev/null 2>&1
wait_for 10 "10.0.0.10 watched by autowatch under the flood" watched_by_autowatch 10.0.0.10
kill -0 "$flood_pid" 2>/dev/null || echo "note: the flood ended before the scanner was caught"
kill "$flood_pid" 2>/dev/null || true
wait "$flood_pid" 2>/dev/null || true
pass "a scanner in a random-source flood: watched by autowatch"

# 7. Unwatched clients tracked (untrack_unwatched false): a probe comes
# through pre_nat's ev_new instead (a connection's first packet only).
topo_add_host "$P" scan2 10.0.0.9 fd00:70:68::9
# reload_with FILE: makes it the configuration in force.
reload_with() {
	local n
	n=$(log_count "reload applied")
	cp "$1" "$CFG"
	ctl reload >/dev/null
	wait_log "reload applied" $((n + 1))
}
cp "$CFG" "$T/auto.json"
jq '.nftables_service_configuration.untrack_unwatched = false' "$CFG" >"$T/tracked.json"
reload_with "$T/tracked.json"
if ip netns exec "$H" nft list chain inet porthop raw_pre >/dev/null 2>&1; then
	fail "raw_pre still there with untrack_unwatched false"
fi
ip netns exec "${P}scan2" nping --send-ip --tcp -p 1999 --flags syn -c 2 --delay 100ms \
	"$TARGET" >/dev/null 2>&1 || true

tracked_probe() { some probe 10.0.0.9 '.port == 1999 and .proto == "tcp"'; }
wait_for 10 "a probe event of 10.0.0.9 (tracked), port 1999" tracked_probe
pass "a tracked unwatched client's probe: through pre_nat (ev_new), a probe event"

# 8. Events off at a reload: the feed's rules and objects gone, the
# reader's nflog group unbound, and no event after it.  (From untracking
# again, so that raw_pre's rule sends to ev_untracked when it goes.)
reload_with "$T/auto.json"
untrack_rule_back() {
	ip netns exec "$H" nft list chain inet porthop raw_pre | grep -F "goto ev_untracked" >/dev/null
}
wait_for 10 "raw_pre's rule to ev_untracked back" untrack_rule_back
nflog_bound() {
	ip netns exec "$H" awk '$1 == 7' /proc/net/netfilter/nfnetlink_log | grep . >/dev/null
}
nflog_bound || fail "porthopd's nflog group 7 is not bound while the feed is on"
jq 'del(.porthopd.events, .porthopd.autowatch)' "$T/auto.json" >"$T/off.json"
reload_with "$T/off.json"
for o in "chain inet porthop ev_new" "chain inet porthop ev_probe" \
	 "map inet porthop service_ports" "set inet porthop services" \
	 "counter inet porthop events_over"; do
	# shellcheck disable=SC2086 # $o is words
	if ip netns exec "$H" nft list $o >/dev/null 2>&1; then
		fail "$o still there after the feed was turned off"
	fi
done
n_log=$(ip netns exec "$H" nft list table inet porthop | grep -c "log prefix\|ev_untracked" || true)
[ "$n_log" -eq 0 ] || fail "$n_log log rules left after the feed was turned off"
# /proc/net/netfilter/nfnetlink_log lists this namespace's bound groups
# (the first column, the group number): porthopd's 7 is gone.
if nflog_bound; then fail "the nflog group is still bound after the feed was turned off"; fi
packets0=$(metric 'porthop_events_packets_total{kind="probe"}')
last0=$(ctl events --json | jq -s 'map(.seq) | max // 0')
ip netns exec "${P}scan2" nping --send-ip --tcp -p 1998 --flags syn -c 3 --delay 50ms \
	"$TARGET" >/dev/null 2>&1 || true
[ "$(metric 'porthop_events_packets_total{kind="probe"}')" = "$packets0" ] ||
	fail "packets read after the feed was turned off"
[ "$(ctl events --json | jq -s 'map(.seq) | max // 0')" = "$last0" ] ||
	fail "an event after the feed was turned off"
[ "$(ctl events --json | jq -s 'map(select(.port == 1998)) | length')" = 0 ] ||
	fail "an event of port 1998 after the feed was turned off"
pass "events off at a reload: rules and objects gone, the nflog group unbound, no event after"

PORTHOPD_PID=$(cat "$T/porthopd.pid")
porthopd_stop || fail "porthopd exited with an error"
