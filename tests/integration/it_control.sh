#!/usr/bin/env bash
# The control socket and the porthop subcommands against a running
# porthopd: permissions and peer checks, status, shuffle (all, one),
# reload (good and refused), mapping (root only), metrics checked against
# the actions performed, the metrics textfile, malformed and oversized
# requests, check and print.
. "$(dirname "$0")/lib.sh"
command -v socat >/dev/null || fail "socat is not installed"
command -v setpriv >/dev/null || fail "setpriv is not installed"

cfg=$T/configuration.json
sock=$T/control.sock
write_config "$T/base.json" 60000 '[{"ip": "10.0.0.3", "tcp_ignore": [1, 2]}, {"ip": "10.0.0.4"}]'
jq --arg m "$T/porthop.prom" '.porthopd = {"metrics_textfile": $m, "metrics_interval_seconds": 1}' \
	"$T/base.json" >"$cfg"
start_redis
start_porthopd "$cfg"
wait_log "subscribed" 1
chmod 755 "$T"
PH() { nsx "$PORTHOP" "$@" -s "$sock"; }

# The socket: a socket file, mode 0600, root's.
[ -S "$sock" ] || fail "no control socket at $sock"
[ "$(stat -c '%a %U' "$sock")" = "600 root" ] || fail "socket is $(stat -c '%a %U' "$sock")"
rc=0; out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$PORTHOP" status -s "$sock" 2>&1) || rc=$?
[ $rc -eq 77 ] || fail "a non-root peer got exit $rc: $out"
pass "control socket: mode 0600, root only; a non-root client is refused (exit 77)"

# status, human and JSON.
out=$(PH status)
grep -q "^watched          2 addresses, 8 pairs$" <<<"$out" || fail "status: $out"
grep -q "^redis            up (127.0.0.1:6379)" <<<"$out" || fail "status: $out"
[ "$(PH status --json | jq -r '.mode + " " + (.shuffles|tostring) + " " + .redis.state')" = "template 1 up" ] \
	|| fail "status --json: $(PH status --json)"
pass "porthop status (text and --json)"

# shuffle: all, then one address; mapping read back.
m1=$(PH mapping --json | jq -c .mapping)
PH shuffle >/dev/null
m2=$(PH mapping --json | jq -c .mapping)
[ "$m1" != "$m2" ] || fail "porthop shuffle did not change the mapping"
check_mapping "$cfg" >/dev/null
grep -q "^shuffled 10.0.0.4 in" <<<"$(PH shuffle 10.0.0.4)" || fail "shuffle 10.0.0.4"
m3=$(PH mapping --json | jq -c .mapping)
[ "$(echo "$m2" | jq -c '.[0]')" = "$(echo "$m3" | jq -c '.[0]')" ] || fail "shuffling 10.0.0.4 moved 10.0.0.3"
[ "$(echo "$m2" | jq -c '.[1]')" != "$(echo "$m3" | jq -c '.[1]')" ] || fail "shuffling 10.0.0.4 did not move it"
grep -qE '^  tcp +3 -> [0-9]+$' <<<"$(PH mapping 10.0.0.3)" || fail "mapping 10.0.0.3: $(PH mapping 10.0.0.3)"
rc=0; PH mapping 10.9.9.9 >/dev/null 2>&1 || rc=$?
[ $rc -eq 65 ] || fail "mapping of an unwatched address: exit $rc"
# The mapping matches the kernel.
[ "$(PH mapping 10.0.0.3 --json | jq -r '.mapping[0].tcp["3"]')" = "$(mapping | awk '$1 == "10.0.0.3" && $2 == 3 {print $3}')" ] \
	|| fail "porthop mapping disagrees with the kernel"
pass "porthop shuffle, shuffle ADDRESS and mapping agree with the kernel"

# reload: refused with the precise error (exit 78), then applied.
cp "$cfg" "$T/good.json"
jq '.nftables_service_configuration.tcp_ports = [1, 70000]' "$T/good.json" >"$cfg"
rc=0; out=$(PH reload 2>&1) || rc=$?
[ $rc -eq 78 ] || fail "refused reload: exit $rc: $out"
grep -qF "$cfg: nftables_service_configuration.tcp_ports[1]: 70000 is out of range" <<<"$out" || fail "reload error: $out"
cp "$T/good.json" "$cfg"
grep -q "^reloaded: 2 watched addresses, 8 pairs$" <<<"$(PH reload)" || fail "reload"
pass "porthop reload: the precise error and exit 78 when refused, applied when valid"

# Malformed and oversized requests get an error reply; porthopd carries on.
r=$(echo 'not json' | nsx socat -t 5 - "UNIX-CONNECT:$sock")
[ "$(echo "$r" | jq -r .error)" = 'malformed request; expected a JSON object with a "command" string' ] || fail "malformed: $r"
r=$(echo '{"command": "frobnicate"}' | nsx socat -t 5 - "UNIX-CONNECT:$sock")
echo "$r" | jq -e '.ok == false' >/dev/null || fail "unknown command: $r"
# The client is still writing when the refusal comes: porthopd reads and
# drops the rest so that the reply is not lost to a reset.
for n in 10000 40000; do
	r=$(head -c $n /dev/zero | tr '\0' 'x' | nsx socat -t 5 - "UNIX-CONNECT:$sock")
	[ "$(echo "$r" | jq -r .error)" = "request too large; at most 4096 bytes on one line" ] || fail "oversized ($n bytes): $r"
done
PH status >/dev/null || fail "porthopd stopped answering"
pass "malformed, unknown and oversized requests: error replies, porthopd unaffected"

# Metrics, checked against what happened: 1 start-up + 1 shuffle + 1
# address shuffle + 1 reload = 4 shuffles; 2 control triggers.
kill -USR1 "$(cat "$T/porthopd.pid")"
wait_log "applied (signal)" 1
nsx "$PORTHOP" publish -q -c "$cfg"
wait_log "applied (redis)" 1
met=$(PH metrics)
val() { echo "$met" | awk -v k="$1" '$1 == k {print $2}'; }
[ "$(val porthop_shuffles_total)" = 6 ] || fail "porthop_shuffles_total $(val porthop_shuffles_total), expected 6"
[ "$(val porthop_shuffle_failures_total)" = 0 ] || fail "failures"
[ "$(val 'porthop_triggers_received_total{source="control"}')" = 2 ] || fail "control triggers"
[ "$(val 'porthop_triggers_received_total{source="signal"}')" = 1 ] || fail "signal triggers"
[ "$(val 'porthop_triggers_received_total{source="redis"}')" = 1 ] || fail "redis triggers"
[ "$(val porthop_pairs)" = 8 ] && [ "$(val porthop_watched_addresses)" = 2 ] || fail "gauges"
[ "$(val porthop_redis_connected)" = 1 ] || fail "redis gauge"
[ "$(val porthop_apply_duration_seconds_count)" = 6 ] || fail "histogram count"
[ "$(val 'porthop_apply_duration_seconds_bucket{le="+Inf"}')" = 6 ] || fail "histogram +Inf"
grep -q '^# TYPE porthop_reconciliations_total counter$' <<<"$met" || fail "no reconciliations counter"
# Every sample line is NAME{LABELS} VALUE with a HELP and TYPE before.
bad=$(grep -v '^#' <<<"$met" | grep -vE '^porthop_[a-z_]+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? [0-9.e+-]+$' || true)
[ -z "$bad" ] || fail "a malformed sample line: $bad"
wait_for 5 "the metrics textfile" grep -q "^porthop_shuffles_total 6$" "$T/porthop.prom"
[ ! -e "$T/porthop.prom.tmp" ] || fail "a temporary metrics file was left"
pass "porthop metrics: counters, gauges and histogram match the actions; textfile written atomically"

# check and print need no daemon.
grep -q "configuration OK: 2 watched addresses, 8 pairs" <<<"$("$PORTHOP" check -o -c "$cfg")" || fail "check"
out=$("$PORTHOP" print -c "$cfg")
[ "$(echo "$out" | grep -c 'redirect to')" -eq 16 ] || fail "print: $(echo "$out" | head)"
grep -q "^table ip nat {" <<<"$out" || fail "print is not nft syntax"
rc=0; "$PORTHOP" print -c "$SRC/tests/corpus/invalid/bad_ip_v4.json" >/dev/null 2>&1 || rc=$?
[ $rc -eq 78 ] || fail "print of an invalid configuration: exit $rc"
pass "porthop check and porthop print (nft syntax, 16 redirect rules)"

# With a control group: mode 0660, that group's members may ask for the
# status but not for the mapping.
jq '.porthopd.control_group = "nogroup"' "$cfg" >"$T/grp.json"
stop_porthopd
: >"$T/porthopd.log"
start_porthopd "$T/grp.json"
[ "$(stat -c '%a %G' "$sock")" = "660 nogroup" ] || fail "group socket is $(stat -c '%a %G' "$sock")"
setpriv --reuid=nobody --regid=nogroup --clear-groups "$PORTHOP" status -s "$sock" >/dev/null || fail "group member refused status"
rc=0; setpriv --reuid=nobody --regid=nogroup --clear-groups "$PORTHOP" mapping -s "$sock" >/dev/null 2>&1 || rc=$?
[ $rc -eq 77 ] || fail "a group member got the mapping (exit $rc)"
pass "control_group: members get status, the mapping stays root's"
stop_porthopd
[ ! -e "$sock" ] || fail "the socket file was left after stop"
