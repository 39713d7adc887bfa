#!/usr/bin/env bash
# untrack_unwatched "auto": how long unwatched clients stay untracked after
# another table starts using conntrack.  porthopd runs alone in a network
# namespace (unwatched clients untracked); a firewall table with a "ct
# state established" rule is loaded, and the time until porthopd has
# turned its untrack rules off (its log line) is measured; the table is
# then deleted and porthopd turns them on again at its next
# reconciliation (1 s here), which is waited for.  The quick look runs
# every 250 ms, so the figure is that phase plus the look and the switch.
#
# usage: bench/untrack_switch.sh [BUILD_DIR] [ROUNDS] [PAIRS...]
#   (1,000 ports on each of PAIRS/1000 addresses; default 10000 100000)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
ROUNDS=${2:-10}
shift 2 || true
SIZES=${*:-10000 100000}
bench_ns_up

config() {
	local na=$(($1 / 1000))
	echo "{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", \"decode_responses\": true},"
	echo " \"redis_subscriber_configuration\": {\"subscriber_channel_names\": [\"bench\"]},"
	echo " \"porthopd\": {\"reconcile_interval_seconds\": 1, \"state_directory\": \"\"},"
	echo " \"nftables_service_configuration\": {\"max_port_number\": 65535,"
	echo "  \"tcp_ports\": [$(seq -s, 1 1000)], \"watched_addresses\": ["
	awk -v n="$na" 'BEGIN {for (i = 0; i < n; i++) printf "%s{\"ip\": \"10.%d.%d.%d\"}", i ? "," : "", int(i / 62500) % 250, int(i / 250) % 250, i % 250 + 1}'
	echo "]}}"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_count PATTERN N: until PATTERN is in the log N times, looked at
# every 2 ms (the figures are the time this takes).
wait_count() {
	WAIT_PID=$pid WAIT_POLL=0.002 wait_log "$1" "$2" 60
}

firewall='table inet fw {
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
	}
}'
printf "%-8s %6s %10s %10s %10s\n" pairs rounds "off med" "off max" "on med"
for pairs in $SIZES; do
	config "$pairs" >"$T/c.json"
	bench_porthopd "$T/c.json"
	grep -q "unwatched clients are untracked" "$T/porthopd.log" || { echo "not untracked at start" >&2; exit 1; }
	: >"$T/off"
	: >"$T/on"
	for i in $(seq "$ROUNDS"); do
		# A random phase against the 250 ms look.
		sleep "0.$((RANDOM % 250 + 100))"
		t0=$(now_ms)
		nsx nft -f - <<<"$firewall"
		wait_count "tracked again" "$i"
		echo $(( $(now_ms) - t0 )) >>"$T/off"
		t0=$(now_ms)
		nsx nft delete table inet fw
		wait_count "are untracked$" "$i"
		echo $(( $(now_ms) - t0 )) >>"$T/on"
	done
	porthopd_stop || true
	printf "%-8s %6s %8s ms %8s ms %8s ms\n" "$pairs" "$ROUNDS" "$(median <"$T/off")" \
		"$(sort -n "$T/off" | tail -1)" "$(median <"$T/on")"
done
