#!/usr/bin/env bash
# Time from PUBLISH to the rules being in the kernel, and porthopd's peak
# RSS, for template mode at 1 address x 3 ports and 100 addresses x 100
# ports.  "In the kernel" is the moment nft_run_cmd_from_buffer() returns
# (the transaction has committed), stamped by porthopd's -T log; the send
# time is stamped by `porthop publish -t` just before the PUBLISH.
#
# usage: bench/trigger_latency.sh [BUILD_DIR] [RUNS]
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
RUNS=${2:-7}
bench_ns_up

# config ADDRESSES PORTS > file
config() {
	local naddr=$1 nports=$2
	jq -n --argjson na "$naddr" --argjson np "$nports" --arg src "$SRC" '{
	  redis_connection_configuration: {host: "127.0.0.1", port: 6379, db: 0,
	    charset: "utf-8", decode_responses: true},
	  redis_subscriber_configuration: {subscriber_channel_names: ["bench"]},
	  nftables_service_configuration: {
	    nft_startup_commands_path: ($src + "/examples/nft_startup_commands.json"),
	    nft_address_rules_path: ($src + "/examples/nft_address_rules.json"),
	    max_port_number: ([$np * 3, 20] | max),
	    tcp_ports: [range(1; $np + 1)],
	    watched_addresses: [range(0; $na) | {ip: "10.1.\(. / 250 | floor).\(. % 250 + 1)", tcp_ignore: []}]
	  }}'
}

printf "%-14s %8s %10s %12s %12s %10s\n" "size" "rules" "runs" "median ms" "apply ms" "peak RSS"
for size in "1 3" "100 100"; do
	set -- $size
	config "$1" "$2" >"$T/cfg.json"
	log=$T/porthopd.log
	bench_porthopd "$T/cfg.json" -T
	lat=()
	for i in $(seq "$RUNS"); do
		n=$((i + 1))
		sent=$(nsx "$BUILD/porthop" publish -q -t -C bench | awk '/^sent at/ {print $3}')
		WAIT_PID=$pid WAIT_POLL=0.01 wait_log "shuffle $n applied" 1 60
		done_at=$(grep "shuffle $n applied" "$log" | awk '{print $1}')
		lat+=("$(echo "$done_at $sent" | awk '{printf "%.2f", ($1 - $2) * 1000}')")
		# Let the kernel settle between runs.
		sleep 0.2
	done
	apply=$(grep "applied (redis)" "$log" | sed 's/.*apply \([0-9.]*\) ms.*/\1/' | median)
	rules=$(grep "shuffle 2 applied" "$log" | sed 's/.* \([0-9]*\) commands.*/\1/')
	rss=$(awk '/VmHWM/ {printf "%.1f MB", $2 / 1024}' /proc/$pid/status)
	porthopd_stop || true
	med=$(printf "%s\n" "${lat[@]}" | median)
	printf "%-14s %8s %10s %12s %12s %10s\n" "$1 x $2" "$rules" "$RUNS" "$med" "$apply" "$rss"
	echo "  each run (ms): ${lat[*]}"
done
