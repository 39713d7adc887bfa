# Shared set-up of the acceptance suite: the demo's topology with a running
# porthopd.  Sourced with the build directory as $1.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ "$(id -u)" -ne 0 ]; then echo "skipped: needs root"; exit 77; fi
for tool in nmap redis-server jq nft ip; do
	command -v $tool >/dev/null || { echo "FAIL: $tool is not installed"; exit 1; }
done
. "$SRC/scripts/topology.sh"

P=pha$$
T=$(mktemp -d /tmp/porthop-at.XXXXXX)
at_cleanup() {
	local rc=$?
	topo_down "$P"
	[ $rc -eq 0 ] || { echo "--- porthopd.log"; tail -n 30 "$T/porthopd.log" 2>/dev/null || true; }
	rm -rf "$T"
	exit $rc
}
trap at_cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
wait_until() {
	local deadline=$(( $(date +%s%N) + $1 * 1000000000 ))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s%N)" -lt "$deadline" ] || fail "timed out waiting for: $*"
		sleep 0.05
	done
}

MODE=${MODE:-template}
topo_up "$P"
H="ip netns exec ${P}host"
topo_services "$P" "$BUILD/phsvc"
$H redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
	--dir "$T" --logfile "$T/redis.log"
wait_until 10 $H redis-cli ping
CFG=$T/configuration.json
if [ "$MODE" = native ]; then
	topo_config_native "$CFG"
elif [ "$MODE" = native-tracked ]; then
	# Native mode with untrack_unwatched false: every client tracked, as
	# "auto" does beside another user of conntrack.
	topo_config_native "$T/native.json"
	jq '.nftables_service_configuration.untrack_unwatched = false' "$T/native.json" >"$CFG"
else
	topo_config "$CFG" "$SRC"
fi
$H "$BUILD/porthopd" -c "$CFG" -s "$T/control.sock" >"$T/porthopd.log" 2>&1 &
wait_until 20 grep -q "subscribed" "$T/porthopd.log"

# trigger: publish one message and wait for the shuffle it causes.
trigger() {
	local n
	n=$(grep -c "applied" "$T/porthopd.log")
	$H "$BUILD/porthop" publish -q -c "$CFG"
	wait_until 20 bash -c "[ \$(grep -c applied '$T/porthopd.log') -gt $n ]"
}

# redirect_set [ADDRESS [PROTO]]: the redirect ports in force, sorted, one
# line.
redirect_set() {
	topo_redirects "$P" "${1:-10.0.0.3}" "${2:-tcp}" | awk '{print $2}' | sort -n | tr '\n' ' '
}
