#!/usr/bin/env bash
# Reshuffle cost by size, measured side by side in one run, in a network
# namespace of its own:
#   native      porthopd, native mode: maps replaced by one netlink batch
#   native/json the same updates through libnftables' JSON parser
#   nft -f      the same elements written as an nft script, `nft -f`
#   floor       one raw libnftnl batch of the same elements (bench/nlfloor)
#   template    porthopd with the reference's nine linear rules per pair
#   1 address   native, one address's 1,000 ports (or all, below 1k)
# plus porthopd's peak RSS (VmHWM) per mode.  Sizes are pairs:
# addresses x ports, 1,000 ports per address from 1k pairs on (PORTS).
#
# usage: bench/reshuffle.sh [BUILD_DIR] [SIZES...]
#   default sizes: 10 1000 10000 100000 1000000
#   TEMPLATE_MAX=N: largest size run in template mode (default 10000;
#   the reference's 100k pairs take minutes and gigabytes)
#   JSON_MAX=N: largest size run through libnftables' JSON (default 100000)
#   PORTS=N: ports per address (default 1000); PORTS=1 is a list of
#   addresses, as a blocklist feed gives
#   UNTRACK=1: also native mode with untrack_unwatched, the same pairs
#   with every other address watched (its sets hold one range per run of
#   consecutive watched addresses: here one per address, the most):
#   full reshuffle and peak RSS, two more columns
#   TRUSTED=N: N trusted addresses (11.0.0.1 and on, one range each: every
#   other address) in native mode's configurations, as a long allow list
#   gives; adds the column "start" (native: the first apply, which fills
#   the sets)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
shift || true
[ $# -gt 0 ] && SIZES=("$@") || SIZES=(10 1000 10000 100000 1000000)
TEMPLATE_MAX=${TEMPLATE_MAX:-10000}
JSON_MAX=${JSON_MAX:-100000}
PORTS=${PORTS:-1000}
UNTRACK=${UNTRACK:-0}
TRUSTED=${TRUSTED:-0}
bench_ns_up

# addrs N [STEP]: the first N addresses (every STEP-th), one a line (awk:
# a blocklist's worth of them without a process each).
addrs() {
	awk -v n="$1" -v s="${2:-1}" 'BEGIN {for (j = 0; j < n; j++) {i = j * s
		printf "10.%d.%d.%d\n", int(i / 62500) % 250, int(i / 250) % 250, i % 250 + 1}}'
}

# config MODE ADDRESSES PORTS > file
config() {
	local mode=$1 na=$2 np=$3 paths=""
	[ "$mode" = template ] && paths="\"nft_startup_commands_path\": \"$SRC/examples/nft_startup_commands.json\", \"nft_address_rules_path\": \"$SRC/examples/nft_address_rules.json\","
	{
		echo "{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", \"decode_responses\": true},"
		echo " \"redis_subscriber_configuration\": {\"subscriber_channel_names\": [\"bench\"]},"
		echo " \"porthopd\": {\"reconcile_interval_seconds\": 0, \"state_directory\": \"\"},"
		echo " \"nftables_service_configuration\": {$paths"
		[ "$mode" = native ] && echo "  \"remove_table_on_stop\": false, \"untrack_unwatched\": false,"
		[ "$mode" = untracked ] && echo "  \"untrack_unwatched\": true,"
		if [ "$mode" != template ] && [ "$TRUSTED" -gt 0 ]; then
			echo "  \"trusted_addresses\": ["
			addrs "$TRUSTED" 2 | awk 'NR > 1 {printf ",\n"} {sub(/^10\./, "11."); printf "\"%s\"", $1}'
			echo "],"
		fi
		echo "  \"max_port_number\": 65535, \"tcp_ports\": [$(seq -s, 1 "$np")],"
		echo "  \"watched_addresses\": ["
		addrs "$na" "$([ "$mode" = untracked ] && echo 2 || echo 1)" | awk 'NR > 1 {printf ",\n"} {printf "{\"ip\": \"%s\"}", $1}'
		echo "]}}"
	}
}

# run_daemon CONFIG RUNS [ARGS...]: start porthopd, reshuffle RUNS times
# (SIGUSR1), then once for the first address alone; print
# "full_ms apply_ms one_ms rss start_ms".
run_daemon() {
	local cfg=$1 runs=$2 log=$T/porthopd.log pid full apply one rss start
	shift 2
	bench_porthopd "$cfg" "$@"
	for i in $(seq "$runs"); do
		kill -USR1 $pid
		WAIT_PID=$pid WAIT_POLL=0.01 wait_log 'applied (signal)' "$i" 600
	done
	nsx redis-cli PUBLISH bench "{\"address\": \"10.0.0.1\"}" >/dev/null
	WAIT_PID=$pid WAIT_POLL=0.01 wait_log "applied (address" 1 600
	full=$(grep 'applied (signal)' "$log" | sed 's/.*build \([0-9.]*\) ms, apply \([0-9.]*\) ms.*/\1 \2/' | awk '{print $1 + $2}' | median)
	apply=$(grep 'applied (signal)' "$log" | sed 's/.*apply \([0-9.]*\) ms.*/\1/' | median)
	one=$(grep 'applied (address' "$log" | sed 's/.*build \([0-9.]*\) ms, apply \([0-9.]*\) ms.*/\1 \2/' | awk '{print $1 + $2}')
	start=$(grep 'applied (start)' "$log" | sed 's/.*build \([0-9.]*\) ms, apply \([0-9.]*\) ms.*/\1 \2/' | awk '{print $1 + $2}')
	rss=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' /proc/$pid/status)
	porthopd_stop || true
	echo "$full $apply $one $rss $start"
}

# nft_script ADDRESSES PORTS > file: flush + the same elements, nft syntax,
# one transaction.
nft_script() {
	local na=$1 np=$2
	echo "flush map inet porthop swap4"
	addrs "$na" | awk -v n="$np" '{
		print "add element inet porthop swap4 {"
		for (p = 1; p <= n; p++)
			printf "%s . tcp . %d : %d, %s . tcp . %d : %d,\n", $1, p, n + p, $1, n + p, p
		print "}"
	}' 
}

extra=""
[ "$UNTRACK" = 1 ] && extra=$(printf " %11s %9s" untracked "RSS untr")
[ "$TRUSTED" -gt 0 ] && extra="$extra$(printf " %11s" start)"
printf "%-9s %10s %11s %10s %10s %8s %11s %11s %9s %9s%s\n" pairs native native/json "nft -f" floor "x floor" template "1 address" "RSS nat" "RSS tmpl" "$extra"
for size in "${SIZES[@]}"; do
	if [ "$size" -lt "$PORTS" ]; then na=1; np=$size; else na=$((size / PORTS)); np=$PORTS; fi
	runs=5
	[ "$size" -ge 1000000 ] && runs=3
	config native "$na" "$np" >"$T/native.json"
	read -r nat nat_apply one rss_n start_n < <(run_daemon "$T/native.json" "$runs")
	json="-"
	[ "$size" -le "$JSON_MAX" ] && read -r json _ _ _ < <(run_daemon "$T/native.json" "$runs" --json-elements)
	# The table stays (remove_table_on_stop false) for nft -f and floor.
	nft_script "$na" "$np" >"$T/elements.nft"
	nftf=$(for i in $(seq "$runs"); do
		s=$(date +%s%N); nsx nft -f "$T/elements.nft"; e=$(date +%s%N)
		echo "$(( (e - s) / 1000 ))" | awk '{printf "%.1f\n", $1 / 1000}'
	done | median)
	floor=$(for i in $(seq "$runs"); do nsx "$BUILD/nlfloor" porthop "$na" "$np"; done | median)
	ratio=$(awk -v a="$nat" -v b="$floor" 'BEGIN {printf "%.2f", a / b}')
	nsx nft delete table inet porthop
	tmpl="-"; rss_t="-"
	if [ "$size" -le "$TEMPLATE_MAX" ]; then
		config template "$na" "$np" >"$T/template.json"
		read -r tmpl _ _ rss_t _ < <(run_daemon "$T/template.json" 3)
		nsx nft flush ruleset
	fi
	extra=""
	if [ "$UNTRACK" = 1 ]; then
		config untracked "$na" "$np" >"$T/untracked.json"
		read -r untr _ _ rss_u _ < <(run_daemon "$T/untracked.json" "$runs")
		extra=$(printf " %8s ms %6s MB" "$untr" "$rss_u")
	fi
	[ "$TRUSTED" -gt 0 ] && extra="$extra$(printf " %8s ms" "$start_n")"
	printf "%-9s %8s ms %8s ms %7s ms %7s ms %7sx %8s ms %8s ms %6s MB %6s MB%s\n" \
		"$size" "$nat" "$json" "$nftf" "$floor" "$ratio" "$tmpl" "$one" "$rss_n" "$rss_t" "$extra"
done
