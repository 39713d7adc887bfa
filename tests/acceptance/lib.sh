# Shared set-up of the acceptance suite, on top of scripts/lib.sh: the
# demo's topology with a running porthopd.  Sourced with the build
# directory as $1; MODE (template, native or native-tracked) picks the
# configuration.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$SRC/scripts/lib.sh"
require_root "network namespaces"
require_tools nmap redis-server jq nft ip
. "$SRC/scripts/topology.sh"

P=pha$$
tmp_dir porthop-at
LOG=$T/porthopd.log
at_report() {
	[ "$1" -eq 0 ] || { echo "--- porthopd.log"; tail -n 30 "$LOG" 2>/dev/null || true; }
}
on_exit at_report

MODE=${MODE:-template}
topo_up "$P"
H="ip netns exec ${P}host"
topo_services "$P" "$BUILD/phsvc"
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
topo_porthopd "$P" "$CFG"

# trigger: publish one message and wait for the shuffle it causes.
trigger() {
	topo_trigger "$P" "$CFG"
}

# redirect_set [ADDRESS [PROTO]]: the redirect ports in force, sorted, one
# line.
redirect_set() {
	topo_redirects "$P" "${1:-10.0.0.3}" "${2:-tcp}" | awk '{print $2}' | sort -n | tr '\n' ' '
}
