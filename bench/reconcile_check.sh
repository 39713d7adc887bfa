#!/usr/bin/env bash
# What reconciliation costs when someone else commits (a table of theirs
# added) and porthop's own table must be compared: its definition, then
# its elements.  Up to 20,000 pairs the maps are digested (one dump);
# above, every element of the mapping in force is asked for by key,
# 100,000 pairs per reconciliation (a step): the table gives a step's
# time and how many steps one commit took.  Beside
# it, for scale, one `nft list map` of swap4 (a dump of the same elements
# plus nft's formatting): a dump's cost grows with the square of the
# elements, which is why the maps are not digested above 20,000 pairs
# (not run above 200,000 pairs: minutes).
#
# usage: bench/reconcile_check.sh [BUILD_DIR] [SIZES...]
#   default sizes (pairs, 1,000 ports per address): 10000 100000 200000 1000000
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
shift || true
[ $# -gt 0 ] && SIZES=("$@") || SIZES=(10000 100000 200000 1000000)
RUNS=${RUNS:-5}
bench_ns_up

# config ADDRESSES > file: ADDRESSES x 1,000 TCP ports, reconciliation
# every second.
config() {
	jq -n --argjson na "$1" '{
	  redis_connection_configuration: {host: "127.0.0.1", port: 6379, db: 0,
	    charset: "utf-8", decode_responses: true},
	  redis_subscriber_configuration: {subscriber_channel_names: ["bench"]},
	  porthopd: {reconcile_interval_seconds: 1, state_directory: ""},
	  nftables_service_configuration: {max_port_number: 65535,
	    tcp_ports: [range(1; 1001)],
	    watched_addresses: [range(0; $na) | {ip: "10.\(. / 62500 | floor % 250).\(. / 250 | floor % 250).\(. % 250 + 1)"}]
	  }}'
}

# checks_done N: N checks of someone else's commit have ended (their
# last step logged).
checks_done() {
	[ "$(grep 'someone else committed' "$LOG" | grep -vc 'next time')" -ge "$1" ]
}

printf "%-9s %12s %6s %14s %12s\n" pairs "check ms" steps "nft list map" "peak RSS"
for size in "${SIZES[@]}"; do
	config "$((size / 1000))" >"$T/cfg.json"
	log=$T/porthopd.log
	bench_porthopd "$T/cfg.json" -v
	# A quiet reconciliation first: the digests are taken then.
	sleep 2.5
	for i in $(seq "$RUNS"); do
		nsx nft "add table inet other$i"
		WAIT_PID=$pid wait_for 600 "check $i" checks_done "$i"
	done
	check=$(grep 'someone else committed' "$log" | sed 's/.*checked in \([0-9.]*\) ms.*/\1/' | median)
	steps=$(grep -c 'someone else committed' "$log" | awk -v r="$RUNS" '{printf "%.0f", $1 / r}')
	list="-"
	if [ "$size" -le 200000 ]; then
		s=$(date +%s%N); nsx nft list map inet porthop swap4 >/dev/null; e=$(date +%s%N)
		list=$(awk -v d=$((e - s)) 'BEGIN {printf "%.1f", d / 1e6}')
	fi
	rss=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' /proc/$pid/status)
	porthopd_stop || true
	for i in $(seq "$RUNS"); do nsx nft "delete table inet other$i"; done
	grep -q "applied again" "$log" && { echo "a repair happened: nothing should have changed" >&2; exit 1; }
	printf "%-9s %9s ms %6s %11s ms %9s MB\n" "$size" "$check" "$steps" "$list" "$rss"
done
