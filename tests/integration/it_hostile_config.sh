#!/usr/bin/env bash
# Hostile configurations and conditions.  A table_name naming the admin's
# own table (Debian's `table inet filter`) is refused by `porthopd -n`
# and at start, before anything touches the kernel, and the admin's table
# stays byte for byte; a table porthop left behind (porthopd killed with
# -9) carries porthop's mark and is taken over.  Reloads of a valid
# configuration in a storm of SIGUSR1 and SIGHUP are never refused.
. "$(dirname "$0")/lib.sh"

# --- someone else's table of the configured name --------------------------

nsx nft -f - <<'NFT'
table inet filter {
	chain input {
		type filter hook input priority 0; policy drop;
	}
}
NFT
before_table=$(nsx nft list table inet filter)
before_ruleset=$(nsx nft list ruleset)

cfg=$T/filter.json
native_config "$cfg" <<'JSON'
{
  "max_port_number": 1000,
  "tcp_ports": [22, 80],
  "watched_addresses": [{"ip": "10.0.0.3"}],
  "table_name": "filter"
}
JSON

rc=0
out=$(nsx "$PORTHOPD" -n -c "$cfg" 2>&1) || rc=$?
[ $rc -eq 78 ] || fail "porthopd -n with the admin's table name: exit $rc: $out"
grep -qF "$cfg: nftables_service_configuration.table_name: \"filter\" names a table that exists and is not porthop's (table inet filter: none of its rules carries porthop's comment \"porthop\"), which porthop would replace; expected the name of no table or of porthop's own: choose another table_name, or, if the table is a leftover, delete it with \`nft delete table inet filter\`" <<<"$out" \
	|| fail "no clear refusal naming the table: $out"
pass "porthopd -n refuses table_name \"filter\" naming the admin's table (exit 78)"

# Starting: refused the same way, before the start-up shuffle.
rc=0
nsx timeout 30 "$PORTHOPD" -c "$cfg" -s "$T/control.sock" -v --no-redis \
	>"$T/refused.log" 2>&1 || rc=$?
[ $rc -eq 78 ] || fail "porthopd with the admin's table name: exit $rc: $(cat "$T/refused.log")"
grep -q "names a table that exists and is not porthop's" "$T/refused.log" \
	|| fail "porthopd did not say why it refused: $(cat "$T/refused.log")"
grep -q "shuffle .* applied\|starting:" "$T/refused.log" \
	&& fail "porthopd started anyway: $(cat "$T/refused.log")"
[ "$(nsx nft list table inet filter)" = "$before_table" ] \
	|| fail "the admin's table changed"
[ "$(nsx nft list ruleset)" = "$before_ruleset" ] \
	|| fail "the ruleset changed: $(nsx nft list ruleset)"
pass "porthopd refuses to start on the admin's table (exit 78), which stays byte for byte"

# --- a leftover of porthop's own ------------------------------------------

nsx nft delete table inet filter
cfg=$T/own.json
native_config "$cfg" <<'JSON'
{
  "max_port_number": 1000,
  "tcp_ports": [22, 80],
  "watched_addresses": [{"ip": "10.0.0.3"}, {"ip": "2001:db8::3"}],
  "table_name": "filter"
}
JSON
start_porthopd "$cfg" --no-redis
listing=$(nsx nft list table inet filter)
grep -q 'comment "porthop"' <<<"$listing" \
	|| fail "porthop's table carries no mark: $listing"
pid=$(cat "$T/porthopd.pid")
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
nsx nft list table inet filter >/dev/null || fail "the killed porthopd's table is gone"
out=$(nsx "$PORTHOPD" -n -c "$cfg" 2>&1) || fail "porthopd -n refused porthop's leftover: $out"
: >"$T/porthopd.log"
start_porthopd "$cfg" --no-redis
grep -q "error" "$T/porthopd.log" && fail "errors taking over the leftover"
stop_porthopd
nsx nft list table inet filter >/dev/null 2>&1 && fail "the table stayed after a clean stop"
pass "a table left by porthopd killed with -9 is taken over, and removed on stop"

# --- a second porthopd beside a running one --------------------------------

cfg=$T/twice.json
native_config "$cfg" <<'JSON'
{
  "max_port_number": 1000,
  "tcp_ports": [22, 80],
  "watched_addresses": [{"ip": "10.0.0.3"}]
}
JSON
: >"$T/porthopd.log"
start_porthopd "$cfg" --no-redis
before=$(nsx "$PORTHOP" mapping -s "$T/control.sock" --json)
# Another socket, the same table: refused before the kernel is touched.
rc=0
out=$(nsx timeout 20 "$PORTHOPD" -c "$cfg" -s "$T/second.sock" --no-redis 2>&1) || rc=$?
[ $rc -eq 69 ] || fail "a second porthopd on the same table: exit $rc ($out)"
grep -q "another porthopd serves table inet porthop in this network namespace" <<<"$out" \
	|| fail "no clear refusal of a second porthopd: $out"
[ ! -e "$T/second.sock" ] || fail "the refused porthopd left a socket"
# The same socket: refused at the check, the first one's socket kept.
rc=0
out=$(nsx timeout 20 "$PORTHOPD" -c "$cfg" -s "$T/control.sock" --no-redis 2>&1) || rc=$?
[ $rc -eq 78 ] || fail "a second porthopd on the same socket: exit $rc ($out)"
grep -q "another process listens there" <<<"$out" || fail "no clear refusal: $out"
[ "$(nsx "$PORTHOP" mapping -s "$T/control.sock" --json)" = "$before" ] \
	|| fail "the running porthopd's mapping changed, or it cannot be reached"
# Checking the running one's configuration (-n opens nothing) is fine.
nsx "$PORTHOPD" -n -c "$cfg" -s "$T/control.sock" >/dev/null \
	|| fail "porthopd -n refused the running porthopd's configuration"
# Another table name is another instance: allowed.
jq '.nftables_service_configuration.table_name = "porthop2"' "$cfg" >"$T/twice2.json"
nsx "$PORTHOPD" -n -c "$T/twice2.json" >/dev/null || fail "porthopd -n refused another table"
stop_porthopd
pass "a second porthopd on the same table or socket is refused (69, 78); the first keeps serving"

# --- reloads in a signal storm --------------------------------------------

cfg=$T/storm.json
native_config "$cfg" <<'JSON'
{
  "max_port_number": 2000,
  "tcp_ports": [22, 80, 443],
  "udp_ports": [53],
  "watched_addresses": [{"ip": "10.0.0.3"}, {"ip": "10.1.0.0/16"},
                        {"ip": "2001:db8::1"}],
  "trusted_addresses": ["10.1.2.3"]
}
JSON
: >"$T/porthopd.log"
start_porthopd "$cfg" --no-redis
pid=$(cat "$T/porthopd.pid")
# 3 seconds at most: SIGUSR1 as fast as perl sends it (a shuffle each
# time the loop gets to it; 3 million at most) beside a loop of SIGHUP (a
# reload each, 3,000 at most).
deadline=$(( $(date +%s%N) + 3000000000 ))
perl -e 'my ($pid, $end) = @ARGV; my $n = 0;
	while ($n < 3000000 && time() < $end) { kill("USR1", $pid) or last; $n++ }
	print "$n\n"' "$pid" $(( deadline / 1000000000 + 1 )) >"$T/usr1.count" &
usr1=$!
rounds=0
while [ "$(date +%s%N)" -lt "$deadline" ] && [ $rounds -lt 3000 ]; do
	kill -HUP "$pid"
	rounds=$((rounds + 1))
done
wait $usr1
rounds="$rounds SIGHUP and $(cat "$T/usr1.count") SIGUSR1"
# Every reload queued is done once the log stops growing: none applied
# or refused for half a second.
settled() {
	local n
	n=$(log_count "reload applied\|reload refused")
	sleep 0.5
	[ "$(log_count "reload applied\|reload refused")" -eq "$n" ]
}
wait_for 120 "the queued reloads to be done" settled
porthopd_alive || fail "porthopd died in the storm"
reloads=$(log_count "reload applied")
refused=$(log_count "reload refused")
echo "  $rounds sent: $reloads reloads applied, $refused refused"
[ "$reloads" -gt 0 ] || fail "no reload was applied"
[ "$refused" -eq 0 ] || fail "valid reloads refused: $(grep -m 3 "error" "$T/porthopd.log")"
grep -q "expected a kernel" "$T/porthopd.log" && fail "a kernel version was blamed"
grep -q "Interrupted system call" "$T/porthopd.log" && fail "an interrupted call failed"
stop_porthopd
pass "reloads in a storm of SIGUSR1 and SIGHUP: none refused"
