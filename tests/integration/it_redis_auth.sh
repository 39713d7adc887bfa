#!/usr/bin/env bash
# Redis connection options: a password (requirepass), an ACL user, a UNIX
# socket; a wrong password is retried without killing porthopd, logged
# once.  Template-mode reconciliation: an admin's `nft flush ruleset` is
# repaired with the mapping in force.
. "$(dirname "$0")/lib.sh"

cfg=$T/configuration.json
write_config "$T/base.json" 20 '[{"ip": "10.0.0.3", "tcp_ignore": [1, 2]}]'

# A password, and a Redis on a UNIX socket only.
nsx redis-server --port 0 --unixsocket "$T/redis.sock" --unixsocketperm 700 \
	--requirepass s3cret-pass --save '' --appendonly no --daemonize yes \
	--dir "$T" --pidfile "$T/redis.pid" --logfile "$T/redis.log"
wait_for 10 "redis on its socket" nsx redis-cli -s "$T/redis.sock" -a s3cret-pass --no-auth-warning ping
jq --arg s "$T/redis.sock" '.redis_connection_configuration += {"unix_socket": $s, "password": "s3cret-pass"}
	| .porthopd = {"reconcile_interval_seconds": 1}' "$T/base.json" >"$cfg"
start_porthopd "$cfg"
wait_log "subscribed to 2 channels" 1
nsx redis-cli -s "$T/redis.sock" -a s3cret-pass --no-auth-warning PUBLISH test_channel_1 go >/dev/null
wait_log "applied (redis)" 1
check_mapping "$cfg" >/dev/null
pass "password and UNIX socket: subscribed, a message triggers"

# Template mode's reconciliation: the admin flushes everything.
m=$(check_mapping "$cfg")
nsx nft flush ruleset
wait_log "reconcile: the rules in force had been removed" 1 10
[ "$(check_mapping "$cfg")" = "$m" ] || fail "the rules came back with another mapping"
pass "template mode: nft flush ruleset repaired with the mapping in force"
stop_porthopd

# An ACL user with only what porthopd needs; then a wrong password.
nsx redis-cli -s "$T/redis.sock" -a s3cret-pass --no-auth-warning \
	ACL SETUSER porthop on '>acl-pass' '&*' '+subscribe' '+ping' >/dev/null
jq '.redis_connection_configuration += {"username": "porthop", "password": "acl-pass"}' "$cfg" >"$T/acl.json"
: >"$T/porthopd.log"
start_porthopd "$T/acl.json"
wait_log "subscribed to 2 channels" 1
nsx redis-cli -s "$T/redis.sock" -a s3cret-pass --no-auth-warning PUBLISH test_channel_2 go >/dev/null
wait_log "applied (redis)" 1
pass "ACL user: subscribed, a message triggers"
stop_porthopd

jq '.redis_connection_configuration.password = "wrong" | .redis_connection_configuration.retry_max_ms = 500' \
	"$T/acl.json" >"$T/wrong.json"
: >"$T/porthopd.log"
start_porthopd "$T/wrong.json"
wait_log "Redis refused" 1
# Two more refused attempts (retried within 500 ms each), at debug level.
wait_log "debug: redis .*next attempt in" 2
porthopd_alive || fail "a refused AUTH killed porthopd"
[ "$(log_count 'retrying (next in')" -eq 1 ] || fail "the refusal was logged more than once per state change"
pass "a wrong password: porthopd keeps running, retries, logs the state change once"
stop_porthopd
