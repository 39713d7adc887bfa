# shellcheck shell=bash
# Shared set-up of the adapter tests (it_fail2ban.sh, it_sshguard.sh), on
# top of scripts/lib.sh and scripts/topology.sh: the demo's network
# (protected host 10.0.0.2 with services on TCP 1-5, the client 10.0.0.3
# and 10.0.0.4 on a bridge, each in its own namespace), and porthopd in
# native mode on the protected host, watching none of them: the detector
# under test is what makes the client watched.  Its control socket is
# $T/control.sock.  Sourced with the build directory as $1.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$SRC/scripts/lib.sh"
require_root "network namespaces"
require_tools nmap redis-server redis-cli jq nft ip
. "$SRC/scripts/topology.sh"

P=phad$$
tmp_dir porthop-ad
LOG=$T/porthopd.log
# ADAPTER_LOGS: more logs to show on failure (the detector's).
ADAPTER_LOGS=()
adapters_report() {
	local f
	[ "$1" -ne 0 ] || return 0
	for f in "$LOG" "${ADAPTER_LOGS[@]}"; do
		[ -f "$f" ] || continue
		echo "--- $(basename "$f") (last 40 lines)"
		grep -v "debug: trigger" "$f" | tail -n 40
	done
}
on_exit adapters_report

# PORTHOP_VALGRIND=1 runs porthopd under valgrind memcheck, as in lib.sh.
if [ "${PORTHOP_VALGRIND:-0}" = 1 ]; then
	PORTHOPD_WRAP=(valgrind --quiet --error-exitcode=99 --leak-check=full
		--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
		--track-fds=no --suppressions="$SRC/tests/valgrind.supp")
fi

topo_up "$P"
topo_services "$P" "$BUILD/phsvc"
# Used by the tests that source this file.
# shellcheck disable=SC2034
{
	HOST=${TOPO_ADDR[host]}
	CLIENT=${TOPO_ADDR[bad]}
	CLIENT6=${TOPO_ADDR6[bad]}
	OTHER=${TOPO_ADDR[good]}
	HX=(ip netns exec "${P}host")
}

# Native mode, TCP services 1-5 moved within 1-20; the only configured
# watched address is one no test host has.
CFG=$T/configuration.json
cat >"$CFG" <<JSON
{
  "redis_connection_configuration": {
    "host": "127.0.0.1", "port": 6379, "db": 0,
    "charset": "utf-8", "decode_responses": true
  },
  "redis_subscriber_configuration": {
    "subscriber_channel_names": ["test_channel_1"]
  },
  "nftables_service_configuration": {
    "max_port_number": 20,
    "tcp_ports": [1, 2, 3, 4, 5],
    "watched_addresses": [ { "ip": "192.0.2.99" } ]
  },
  "porthopd": {
    "reconcile_interval_seconds": 1,
    "state_directory": "$T/state"
  }
}
JSON
mkdir -p "$T/state"
topo_porthopd "$P" "$CFG"

# ctl ARGS...: porthop ARGS on porthopd's control socket.
ctl() {
	"${HX[@]}" "$BUILD/porthop" -s "$T/control.sock" "$@"
}

# entry ADDRESS [ORIGIN]: the runtime entry of ADDRESS (of ORIGIN, if
# given) as `porthop watch list --json` shows it; fails if there is none.
entry() {
	local args=()
	[ -z "${2:-}" ] || args=(--origin "$2")
	ctl watch list "${args[@]}" --json |
		jq -ce --arg a "$1" '[.entries[] | select(.address == $a)] | first // empty'
}

# watched ADDRESS ORIGIN, unwatched ADDRESS ORIGIN: whether ORIGIN holds
# an entry for ADDRESS.
watched() {
	entry "$1" "$2" >/dev/null
}
unwatched() {
	! watched "$1" "$2"
}

# view: the TCP ports the client sees open on the protected host, sorted,
# one line.
view() {
	topo_scan "$P" bad sS "$HOST" | awk '$2 == "open" {print $1}' | sort -n | tr '\n' ' '
}

# redirects: the redirect ports in force for the client, the same way.
redirects() {
	topo_redirects "$P" "$CLIENT" tcp | awk '{print $2}' | sort -n | tr '\n' ' '
}

# expect_real_view WHEN: the client sees the real ports 1-5.
expect_real_view() {
	local v
	v=$(view)
	[ "$v" = "1 2 3 4 5 " ] || fail "$1: the client saw [$v], expected the real ports [1 2 3 4 5 ]"
	pass "$1: the client sees the real ports [$v]"
}

# expect_moved_view WHEN: the client sees its five redirect ports in force
# (read from the kernel), and none of the real ones.
expect_moved_view() {
	local v r p
	r=$(redirects)
	[ "$(echo "$r" | wc -w)" -eq 5 ] || fail "$1: no mapping in force for $CLIENT: [$r]"
	v=$(view)
	[ "$v" = "$r" ] || fail "$1: the client saw [$v], expected its redirects [$r]"
	for p in 1 2 3 4 5; do
		case " $v" in *" $p "*) fail "$1: the client saw real port $p" ;; esac
	done
	pass "$1: the client sees moved ports [$v]"
}

# stop_porthopd: SIGTERM, and its exit status must be 0.
stop_porthopd() {
	local rc=0
	porthopd_stop || rc=$?
	[ $rc -eq 0 ] || fail "porthopd exited with status $rc"
}
