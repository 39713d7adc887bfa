# Shared helpers for the integration tests.  Each test runs in network
# namespaces it creates and removes them on any exit (trap).  Traffic stays
# on 127.0.0.1 inside those namespaces or on links between them.
set -euo pipefail

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PORTHOPD=$BUILD/porthopd
PORTHOP=$BUILD/porthop

if [ "$(id -u)" -ne 0 ]; then
	echo "skipped: needs root for network namespaces"
	exit 77
fi
for tool in redis-server redis-cli jq nft ip; do
	command -v $tool >/dev/null || { echo "FAIL: $tool is not installed"; exit 1; }
done

T=$(mktemp -d /tmp/porthop-it.XXXXXX)
VALGRIND=()
if [ "${PORTHOP_VALGRIND:-0}" = 1 ]; then
	VALGRIND=(valgrind --quiet --error-exitcode=99 --leak-check=full
		--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
		--track-fds=no --suppressions="$SRC/tests/valgrind.supp")
fi
NS=ph-it-$$-$RANDOM
NAMESPACES=("$NS")

cleanup() {
	local rc=$?
	for ns in "${NAMESPACES[@]}"; do
		# Processes outlive a deleted namespace: end them first.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -TERM "$pid" 2>/dev/null || true
		done
	done
	sleep 0.2
	for ns in "${NAMESPACES[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
	if [ $rc -ne 0 ] && [ -f "$T/porthopd.log" ]; then
		echo "--- porthopd.log (last 40 lines)"
		cp "$T/porthopd.log" /tmp/porthopd-failed.log
		grep -v "debug: trigger" "$T/porthopd.log" | tail -n 60
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
ip -n "$NS" link set lo up

nsx() { ip netns exec "$NS" "$@"; }

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

pass() {
	echo "ok: $*"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$(( $(date +%s%N) + secs * 1000000000 ))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s%N)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for $what"
		sleep 0.05
	done
}

start_redis() {
	nsx redis-server --port "${1:-6379}" --bind 127.0.0.1 --save '' \
		--appendonly no --daemonize yes --dir "$T" \
		--pidfile "$T/redis.pid" --logfile "$T/redis.log"
	wait_for 10 "redis-server" nsx redis-cli -p "${1:-6379}" ping
}

stop_redis() {
	nsx redis-cli -p "${1:-6379}" shutdown nosave >/dev/null 2>&1 || true
	wait_for 10 "redis-server to stop" bash -c "! ip netns exec $NS redis-cli -p ${1:-6379} ping"
}

log_count() {
	grep -c -- "$1" "$T/porthopd.log" 2>/dev/null || true
}

# wait_log PATTERN COUNT [SECONDS]: until PATTERN appears COUNT times.
wait_log() {
	wait_for "${3:-20}" "\"$1\" x$2 in the log" \
		bash -c "[ \$(grep -c -- '$1' '$T/porthopd.log' 2>/dev/null || echo 0) -ge $2 ]"
}

# start_porthopd CONFIG [ARGS...]: start in the namespace, wait for the
# start-up shuffle.
start_porthopd() {
	local cfg=$1
	shift
	# Not through nsx: $! must be porthopd itself, not a subshell.
	# PORTHOP_VALGRIND=1 runs it under memcheck: any error or leak makes
	# its exit status 99, which stop_porthopd reports.
	ip netns exec "$NS" "${VALGRIND[@]}" "$PORTHOPD" -c "$cfg" -s "$T/control.sock" -v "$@" >>"$T/porthopd.log" 2>&1 &
	echo $! >"$T/porthopd.pid"
	wait_log "shuffle 1 applied" 1 60
	# The control socket opens right after the start-up shuffle.
	wait_for 60 "the control socket" test -S "$T/control.sock"
}

porthopd_alive() {
	kill -0 "$(cat "$T/porthopd.pid")" 2>/dev/null
}

# stop_porthopd: SIGTERM, and the exit status must be 0 (sanitizer
# builds turn a leak into a non-zero status).
stop_porthopd() {
	local pid rc=0
	pid=$(cat "$T/porthopd.pid")
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	[ $rc -eq 0 ] || fail "porthopd exited with status $rc"
}

# native_config FILE: a native-mode configuration whose
# nftables_service_configuration is standard input (a JSON object), with
# Redis on 127.0.0.1:6379, channel test_channel_1, and reconciliation
# every second.
native_config() {
	jq '{redis_connection_configuration: {host: "127.0.0.1", port: 6379,
		db: 0, charset: "utf-8", decode_responses: true},
	     redis_subscriber_configuration: {subscriber_channel_names: ["test_channel_1"]},
	     nftables_service_configuration: .,
	     porthopd: {reconcile_interval_seconds: 1}}' >"$1"
}

# write_config FILE MAX_PORT WATCHED_JSON [TCP_PORTS_JSON] [REDIS_PORT]
write_config() {
	cat >"$1" <<JSON
{
  "redis_connection_configuration": {
    "host": "127.0.0.1", "port": ${5:-6379}, "db": 0,
    "charset": "utf-8", "decode_responses": true
  },
  "redis_subscriber_configuration": {
    "subscriber_channel_names": ["test_channel_1", "test_channel_2"]
  },
  "nftables_service_configuration": {
    "nft_startup_commands_path": "$SRC/examples/nft_startup_commands.json",
    "nft_address_rules_path": "$SRC/examples/nft_address_rules.json",
    "max_port_number": $2,
    "tcp_ports": ${4:-[1, 2, 3, 4, 5]},
    "watched_addresses": $3
  }
}
JSON
}

# mapping: "address port redirect" for every real port redirected in the
# kernel's nat chain (read back with nft -j).
mapping() {
	nsx nft -j list ruleset | jq -r '
		.nftables[] | select(.rule and .rule.table == "nat") | .rule.expr
		| "\(.[0].match.right) \(.[1].match.right) \(.[2].redirect.port)"'
}

# check_mapping CONFIG: the kernel holds the rules of every (address, port)
# pair of CONFIG, each with a valid, distinct, unused redirect port, and
# nothing else.  Prints the mapping's signature.
check_mapping() {
	local cfg=$1 expected actual
	expected=$(jq -r '.nftables_service_configuration as $n
		| $n.watched_addresses[] | .ip as $a | (.tcp_ignore // []) as $i
		| $n.tcp_ports[] | select(. as $p | $i | index($p) | not)
		| "\($a) \(.)"' "$cfg" | sort)
	actual=$(mapping)
	local max used
	max=$(jq '.nftables_service_configuration.max_port_number' "$cfg")
	used=" $(jq -r '.nftables_service_configuration.tcp_ports | join(" ")' "$cfg") "
	echo "$actual" | EXP="$expected" awk -v max="$max" -v used="$used" '
		BEGIN { n = split(ENVIRON["EXP"], e, "\n"); for (i = 1; i <= n; i++) want[e[i]] = 1 }
		{ line[$1 " " $2] = $3; all[NR] = $0 }
		END {
			bad = 0
			for (k in want) {
				if (!(k in line)) { print "missing pair " k; bad = 1; continue }
				split(k, f, " "); r = line[k]
				if (r < 1 || r > max) { print "redirect " r " out of range for " k; bad = 1 }
				if (index(used, " " r " ")) { print "redirect " r " is a used port for " k; bad = 1 }
				if (seen[f[1] " " r]++) { print "redirect " r " drawn twice for " f[1]; bad = 1 }
				if (line[f[1] " " r] != f[2]) { print "no reverse rule " f[1] " " r " -> " f[2]; bad = 1 }
			}
			if (NR != 2 * n) { print "expected " 2 * n " nat rules, found " NR; bad = 1 }
			exit bad
		}' >&2 || fail "kernel ruleset does not hold a valid mapping for $cfg"
	# 6 stateless rules and 1 output rule per pair, as the template says.
	local pairs raw out
	pairs=$(echo "$expected" | grep -c .)
	raw=$(nsx nft -j list ruleset | jq '[.nftables[] | select(.rule and .rule.table == "raw" and .rule.chain == "prerouting")] | length')
	out=$(nsx nft -j list ruleset | jq '[.nftables[] | select(.rule and .rule.table == "raw" and .rule.chain == "output")] | length')
	[ "$raw" -eq $((6 * pairs)) ] || fail "expected $((6 * pairs)) raw prerouting rules, found $raw"
	[ "$out" -eq "$pairs" ] || fail "expected $pairs raw output rules, found $out"
	echo "$actual" | sort | md5sum | cut -c1-16
}
