#!/usr/bin/env bash
# untrack_unwatched "auto", the default in native mode: unwatched clients
# are kept out of connection tracking while no other table uses it; a
# firewall that starts using it (ct state established) is seen within a
# fraction of a second and unwatched clients are tracked again, so its
# rules see their replies; gone again, they are untracked again.  The
# switches are porthop's own commits, not taken for someone else's.
. "$(dirname "$0")/lib.sh"
command -v iptables-nft >/dev/null || fail "iptables is not installed (scripts/deps.sh installs it)"

cfg=$T/auto.json
native_config "$cfg" <<JSON
{
  "max_port_number": 60000,
  "tcp_ports": [9000],
  "watched_addresses": [{"ip": "10.0.0.3"}, {"ip": "10.9.0.0/16"}]
}
JSON
sock=$T/control.sock
PH() { nsx "$PORTHOP" "$@" -s "$sock"; }
notracks() { nsx nft list table inet porthop | grep -c notrack || true; }
# An unwatched client (127.0.0.1) talks to the service: banner and echo.
# compat_seen CHECKS: a reconciliation has run since CHECKS and found the
# compat match using conntrack.
compat_seen() {
	metric_above porthop_reconcile_checks_total "$1" &&
		[ "$(status unwatched_clients.conntrack_user)" = "table ip filter, chain INPUT: match" ]
}
talks() { echo hello | timeout 4 ip netns exec "$NS" "$BUILD/phsvc" echo 127.0.0.1 9000 | grep -q "ok hello"; }
# A firewall on input that lets the service in and, for everything else,
# relies on conntrack: replies to the host's own connections pass only as
# "established", which an untracked packet never is.
firewall='table inet fw {
	chain input {
		type filter hook input priority filter; policy drop;
		tcp dport 9000 accept
		ct state established,related accept
	}
}'

nsx "$BUILD/phsvc" serve 9000 &
start_redis
start_porthopd "$cfg"
grep -q 'unwatched clients are untracked (untrack_unwatched "auto": no other table uses connection tracking)' "$T/porthopd.log" \
	|| fail "no word of the untracked state at start"
[ "$(notracks)" -eq 4 ] || fail "auto with no other conntrack user: expected 4 notrack rules, found $(notracks)"
[ "$(PH status --json | jq -r .unwatched_clients.connection_tracking)" = untracked ] || fail "status: $(PH status --json)"
PH metrics | grep -x "porthop_unwatched_untracked 1" >/dev/null || fail "metrics: not untracked"
PH status | grep -qx "unwatched        untracked (untrack_unwatched auto)" || fail "porthop status: $(PH status)"
talks || fail "no firewall: the unwatched client cannot talk to the service"
pass "auto, alone: unwatched clients untracked (4 notrack rules), said at start, in status and metrics"

# Stopped with its table kept, porthopd takes "auto"'s untracking out:
# nobody would be left to do it when another table starts using conntrack.
jq '.nftables_service_configuration.remove_table_on_stop = false' "$cfg" >"$T/keep.json"
stop_porthopd
: >"$T/porthopd.log"
start_porthopd "$T/keep.json"
[ "$(notracks)" -eq 4 ] || fail "restarted with a kept table: expected 4 notrack rules"
stop_porthopd
grep -q "the rules in force stay in the kernel, unwatched clients tracked" "$T/porthopd.log" || fail "stop with the table kept: $(tail -2 "$T/porthopd.log")"
nsx nft list table inet porthop >/dev/null || fail "remove_table_on_stop false: the table is gone"
[ "$(notracks)" -eq 0 ] || fail "stopped with the table kept: notrack rules stayed"
nsx nft delete table inet porthop
: >"$T/porthopd.log"
start_porthopd "$cfg"
pass "a clean stop that keeps the table takes the untrack rules out"

# The firewall arrives: within the quick look's quarter second (1 s
# allowed here) the notrack rules are gone, so its rules see the replies.
nsx nft -f - <<<"$firewall"
wait_log "conntrack: table inet fw, chain input: ct uses connection tracking; unwatched clients are tracked again" 1 2
[ "$(notracks)" -eq 0 ] || fail "a conntrack user came: notrack rules stayed"
talks || fail "firewall with ct state: the unwatched client cannot talk to the service once tracked"
st=$(PH status --json)
[ "$(jq -r .unwatched_clients.connection_tracking <<<"$st")" = tracked ] || fail "status: $st"
[ "$(jq -r .unwatched_clients.conntrack_user <<<"$st")" = "table inet fw, chain input: ct" ] || fail "status: $st"
PH status | grep -qx "unwatched        tracked (untrack_unwatched auto): conntrack used by table inet fw, chain input: ct" \
	|| fail "porthop status: $(PH status)"
pass "a firewall that uses conntrack: unwatched clients tracked again within a second, and its ct state rules work"

# The same firewall with unwatched clients untracked regardless (true):
# the host's replies are dropped; what "auto" avoids.
jq '.nftables_service_configuration.untrack_unwatched = true' "$cfg" >"$T/on.json"
cp "$cfg" "$T/auto.saved"
cp "$T/on.json" "$cfg"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 1
[ "$(notracks)" -eq 4 ] || fail "untrack_unwatched true: expected 4 notrack rules"
talks && fail "untrack_unwatched true beside a ct state firewall: the client still talks (the test proves nothing)"
cp "$T/auto.saved" "$cfg"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 2
grep -q 'unwatched clients are tracked: table inet fw, chain input: ct uses connection tracking (untrack_unwatched "auto")' "$T/porthopd.log" \
	|| fail "reload to auto: no word of the tracked state"
[ "$(notracks)" -eq 0 ] || fail "reload to auto beside the firewall: notrack rules"
talks || fail "reload to auto: the unwatched client cannot talk"
pass "the control: with untrack_unwatched true the same firewall cuts the unwatched client off; back to auto it talks"

# The firewall goes: at the next reconciliation (1 s) unwatched clients
# are untracked again.
nsx nft delete table inet fw
wait_log "conntrack: no other table uses connection tracking now; unwatched clients are untracked" 1 5
[ "$(notracks)" -eq 4 ] || fail "the conntrack user went: expected 4 notrack rules"
talks || fail "untracked again: the unwatched client cannot talk"
# The switch was porthop's own commit.  Someone else's next (a table
# added and deleted in one transaction) makes the next reconciliation
# compare porthop's table with what it applied, switch included.
checks=$(metric porthop_reconcile_checks_total)
nsx nft 'add table inet phprobe; delete table inet phprobe'
wait_for 5 "the reconciliation after someone else's commit" metric_above porthop_reconcile_checks_total "$checks"
[ "$(log_count "had been removed or altered")" -eq 0 ] || fail "porthop took its own switches for someone else's: $(grep altered "$T/porthopd.log")"
[ "$(PH status --json | jq .reconciliations)" -eq 0 ] || fail "reconciliations: $(PH status --json | jq .reconciliations)"
PH metrics | grep -x "porthop_untrack_switches_total 2" >/dev/null || fail "metrics: $(PH metrics | grep untrack)"
pass "the firewall gone: untracked again at the next reconciliation; no switch taken for someone else's commit"

# iptables: iptables-nft's rules are nftables rules (its conntrack match
# is a ct expression); a compat match that nftables cannot express is
# counted unseen; an iptables-legacy table is counted, its rules out of
# nftables' sight (and it moves no generation: the full look at the next
# reconciliation sees it).
# (iptables-nft 1.8.9 sends it as the compat match xt_conntrack, which
# nft lists as "ct state established".)
nsx iptables-nft -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT
wait_log "conntrack: table ip filter, chain INPUT: match uses connection tracking" 1 2
checks=$(metric porthop_reconcile_checks_total)
nsx iptables-nft -F INPUT
nsx iptables-nft -A INPUT -m recent --name seen --set
# A reconciliation may see the flush alone (untracked for a moment): wait
# for the one that has seen the compat match.
wait_for 5 "the reconciliation that sees the compat match" compat_seen "$checks"
[ "$(notracks)" -eq 0 ] || fail "an iptables-nft compat match: untracked again"
[ "$(PH status --json | jq -r .unwatched_clients.conntrack_user)" = "table ip filter, chain INPUT: match" ] \
	|| fail "compat match: $(PH status --json | jq -c .unwatched_clients)"
nsx nft delete table ip filter
wait_log "conntrack: no other table uses connection tracking now" 2 5
if nsx iptables-legacy -L -n >/dev/null 2>&1; then
	wait_log "conntrack: iptables-legacy table filter (IPv4) uses connection tracking" 1 5
	[ "$(notracks)" -eq 0 ] || fail "an iptables-legacy table: notrack rules stayed"
	pass "iptables-nft's conntrack match and compat matches, and an iptables-legacy table, count as users of conntrack"
else
	pass "iptables-nft's conntrack match and compat matches count as users of conntrack (iptables-legacy not available here: its check skipped)"
fi

# A flush of the whole ruleset with the firewall in it: porthop's table
# is defined anew, and tracks unwatched clients from the start.
nsx nft -f - <<<"flush ruleset
$firewall"
wait_log "reconcile: the rules in force had been removed or altered" 1 5
[ "$(notracks)" -eq 0 ] || fail "redefined beside a conntrack user: notrack rules"
talks || fail "redefined beside the firewall: the unwatched client cannot talk"
[ "$(log_count "conntrack: turning")" -eq 0 ] || fail "a failed switch: $(grep "conntrack: turning" "$T/porthopd.log")"
stop_porthopd
pass "a flush ruleset that brings a conntrack user: the table comes back without notrack rules"
