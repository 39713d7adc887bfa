#!/usr/bin/env bash
# Bad input changes nothing: `porthopd -n`, `porthop check` and a start-up
# with an invalid configuration exit 78 with the file, path and reason, and
# leave the kernel ruleset as it was; a SIGHUP with a broken configuration
# or a template the kernel refuses keeps the old rules and the daemon.
. "$(dirname "$0")/lib.sh"

cfg=$T/configuration.json
write_config "$cfg" 20 '[{"ip": "10.0.0.3", "tcp_ignore": [1, 2]}]'
start_redis
start_porthopd "$cfg"
check_mapping "$cfg" >/dev/null
nsx nft list ruleset >"$T/before.nft"

unchanged() {
	nsx nft list ruleset | diff -q "$T/before.nft" - >/dev/null \
		|| fail "the kernel ruleset changed after $1"
}

# expect78 DESCRIPTION MESSAGE COMMAND...
expect78() {
	local what=$1 msg=$2 rc=0 out
	shift 2
	out=$("$@" 2>&1) || rc=$?
	[ $rc -eq 78 ] || fail "$what: exit $rc, expected 78; output: $out"
	grep -qF -- "$msg" <<<"$out" || fail "$what: no \"$msg\" in: $out"
	unchanged "$what"
}

cd "$SRC/tests/corpus"
n=0
for f in invalid/*.json; do
	msg=$(head -n 1 "${f%.json}.expect")
	expect78 "porthopd -n $f" "$msg" nsx "$PORTHOPD" -n -c "$f"
	n=$((n + 1))
done
pass "porthopd -n refused all $n invalid corpus files with exit 78, ruleset unchanged"

expect78 "porthop check" 'invalid/bad_ip_v4.json: nftables_service_configuration.watched_addresses[1].ip: "10.0.0.300" is not an IPv4 or IPv6 address' \
	nsx "$PORTHOP" check -c invalid/bad_ip_v4.json
expect78 "porthop check -o" 'max_port_number: 6 leaves 1 free redirect ports' \
	"$PORTHOP" check -o -c invalid/max_port_too_small.json
cd - >/dev/null

# A template that parses but that the kernel refuses: a rule for a chain
# the startup commands never create.
jq '.rules[1].add.rule.chain = "postrouting"' "$SRC/examples/nft_address_rules.json" >"$T/bad_rules.json"
jq --arg p "$T/bad_rules.json" '.nftables_service_configuration.nft_address_rules_path = $p' "$cfg" >"$T/bad_template.json"
expect78 "porthopd -n with a kernel-refused template" \
	"$T/bad_rules.json: rules[1]: rejected by libnftables when instantiated for watched_addresses[0] (ip 10.0.0.3, port 3, redirect 6)" \
	nsx "$PORTHOPD" -n -c "$T/bad_template.json"
pass "a template libnftables refuses is caught by the dry run, with its rule index"

# Starting with a bad configuration: exit 78, nothing applied.
expect78 "porthopd start with a refused template" "configuration refused" \
	nsx "$PORTHOPD" -c "$T/bad_template.json"
pass "start-up with a bad configuration: exit 78, ruleset unchanged"

# Reload with the refused template, then with broken JSON: the daemon keeps
# running with the old rules, and triggers still work.
cp "$cfg" "$T/good.json"
cp "$T/bad_template.json" "$cfg"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload refused" 1
porthopd_alive || fail "porthopd died on a bad reload"
unchanged "a refused reload"
printf '{"redis_connection_configuration": ' >"$cfg"
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload refused" 2
grep -qF "$cfg:1:" "$T/porthopd.log" || fail "the JSON error does not name the file and line"
unchanged "a reload of truncated JSON"
pass "SIGHUP with bad configurations: refused with the reason, old rules in force"

cp "$T/good.json" "$cfg"
nsx "$PORTHOP" publish -q -c "$cfg"
wait_log "applied (redis)" 1
check_mapping "$cfg" >/dev/null
pass "after the refused reloads, triggers still apply"

# A good reload with a different watched set takes effect at once.
write_config "$cfg" 30 '[{"ip": "10.0.0.3", "tcp_ignore": [1, 2]}, {"ip": "10.0.0.9"}]'
kill -HUP "$(cat "$T/porthopd.pid")"
wait_log "reload applied" 1
check_mapping "$cfg" >/dev/null
pass "SIGHUP with a valid configuration: applied atomically"
stop_porthopd
