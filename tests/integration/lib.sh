# Shared set-up of the integration tests, on top of scripts/lib.sh: each
# test runs in a network namespace $NS the library removes on any exit.
# Traffic stays on 127.0.0.1 inside it.  Sourced with the build directory
# as $1.  PORTHOP_VALGRIND=1 runs porthopd under valgrind memcheck.
set -euo pipefail

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$SRC/scripts/lib.sh"
PORTHOPD=$BUILD/porthopd
PORTHOP=$BUILD/porthop

require_root "network namespaces"
require_tools redis-server redis-cli jq nft ip

tmp_dir porthop-it
LOG=$T/porthopd.log
VALGRIND=()
if [ "${PORTHOP_VALGRIND:-0}" = 1 ]; then
	VALGRIND=(valgrind --quiet --error-exitcode=99 --leak-check=full
		--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
		--track-fds=no --suppressions="$SRC/tests/valgrind.supp")
fi
PORTHOPD_WRAP=("${VALGRIND[@]}")

# On failure, porthopd's log: kept in /tmp/porthopd-failed.log, its end
# shown without the debug lines of every trigger.
it_report() {
	[ "$1" -ne 0 ] && [ -f "$LOG" ] || return 0
	echo "--- porthopd.log (last 60 lines)"
	cp "$LOG" /tmp/porthopd-failed.log
	grep -v "debug: trigger" "$LOG" | tail -n 60
}
on_exit it_report

NS=ph-it-$$-$RANDOM
ns_new "$NS"

start_redis() {
	redis_start "$NS" "${1:-6379}"
}

stop_redis() {
	redis_stop "$NS" "${1:-6379}"
}

# start_porthopd CONFIG [ARGS...]: start in the namespace with the control
# socket $T/control.sock, wait for the start-up shuffle.  Any error or
# leak under valgrind makes its exit status 99, which stop_porthopd
# reports.
start_porthopd() {
	local cfg=$1
	shift
	porthopd_spawn "$NS" -c "$cfg" -s "$T/control.sock" -v "$@"
	echo "$PORTHOPD_PID" >"$T/porthopd.pid"
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
	local rc=0
	PORTHOPD_PID=$(cat "$T/porthopd.pid")
	porthopd_stop || rc=$?
	[ $rc -eq 0 ] || fail "porthopd exited with status $rc"
}

# ctl COMMAND [ARGS...]: porthop COMMAND on the control socket.
ctl() {
	local cmd=$1
	shift
	nsx "$PORTHOP" "$cmd" -s "$T/control.sock" "$@"
}

# expect_exit CODE COMMAND...: runs COMMAND, its output in $T/out; fails
# the test unless it exits CODE.
expect_exit() {
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>&1 || rc=$?
	[ "$rc" -eq "$want" ] ||
		fail "$* exited $rc, expected $want: $(cat "$T/out")"
}

# status FIELD: a field of `porthop status --json` (a jq path without its
# leading dot).
status() {
	ctl status --json | jq -r ".$1"
}

# status_at_least FIELD VALUE: whether that field of the status is VALUE
# or more.
status_at_least() {
	[ "$(status "$1")" -ge "$2" ]
}

# metric NAME: the value of one sample of `porthop metrics` (NAME with its
# labels, as printed).
metric() {
	ctl metrics | awk -v k="$1" '$1 == k {print $2}'
}

# refused REASON: the name of the metric of messages refused for REASON
# (malformed, bad_mac, replay...).
refused() {
	echo "porthop_triggers_refused_total{source=\"redis\",reason=\"$1\"}"
}

# metric_above NAME VALUE: whether NAME is above VALUE.
metric_above() {
	[ "$(metric "$1")" -gt "$2" ]
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
	     porthopd: {reconcile_interval_seconds: 1,
			state_directory: $state}}' --arg state "$T/state" >"$1"
}

# watch_config FILE [NFT_JSON]: native_config of the runtime watch list's
# tests: TCP 22, 80, 443 and UDP 53 for 10.0.0.3, ports up to 60000, and
# NFT_JSON's keys besides (trusted_addresses, untrack_unwatched...); the
# state in $T/state.
watch_config() {
	jq -n --argjson extra "${2:-"{}"}" '{max_port_number: 60000,
		tcp_ports: [22, 80, 443], udp_ports: [53],
		watched_addresses: [{ip: "10.0.0.3"}]} + $extra' | native_config "$1"
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

# tracked4: the elements of porthop's tracked4 set, as nft lists them
# (one JSON array on a line).
tracked4() {
	nsx nft -j list set inet porthop tracked4 | jq -c '[.nftables[].set.elem // empty | .[]]'
}

# journal_sink SOCKET DIR: a stand-in for journald's native socket (where
# no systemd-journald runs): binds the datagram socket SOCKET and writes
# each datagram it receives, byte for byte, to DIR/000001, DIR/000002...
# Stopped at exit.
journal_sink() {
	mkdir -p "$2"
	python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
n = 0
while True:
    d = s.recv(1 << 20)
    n += 1
    tmp = os.path.join(sys.argv[2], ".tmp")
    with open(tmp, "wb") as f:
        f.write(d)
    os.rename(tmp, os.path.join(sys.argv[2], "%06d" % n))
' "$1" "$2" &
	JOURNAL_SINK_PID=$!
	on_exit journal_sink_stop
	wait_for 10 "the journal's stand-in socket" test -S "$1"
}
journal_sink_stop() {
	[ -z "${JOURNAL_SINK_PID:-}" ] || kill "$JOURNAL_SINK_PID" 2>/dev/null
	JOURNAL_SINK_PID=
}

# host_ctl CMD [ARGS...]: porthop CMD on $T/control.sock inside $H, a
# topology test's protected host (scripts/topology.sh).
host_ctl() {
	local cmd=$1
	shift
	ip netns exec "$H" "$PORTHOP" "$cmd" -s "$T/control.sock" "$@"
}

# sshd_up NS ADDR...: a real sshd in NS on port 22 of each ADDR, its own
# host key, root's login by the throwaway key pair $T/id alone (the
# client uses ssh -i "$T/id"); waits until it listens on the first ADDR.
sshd_up() {
	local ns=$1 a
	shift
	ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey"
	ssh-keygen -q -t ed25519 -N '' -f "$T/id"
	cp "$T/id.pub" "$T/authorized_keys"
	for a in "$@"; do echo "ListenAddress $a"; done >"$T/sshd_config"
	cat >>"$T/sshd_config" <<CONF
HostKey $T/hostkey
AuthorizedKeysFile $T/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $T/sshd.pid
CONF
	# Its privilege separation directory (the package makes it at boot).
	mkdir -p /run/sshd
	ip netns exec "$ns" /usr/sbin/sshd -f "$T/sshd_config" -E "$T/sshd.log"
	wait_for 10 "sshd listening on $1" ip netns exec "$ns" \
		socat -u OPEN:/dev/null "TCP:$1:22"
}
