#!/usr/bin/env bash
# TCP connection rate through porthop, measured side by side in one run on
# the demo's namespace topology: a watched client (bad) connecting through
# a moved port, an unwatched one (good) connecting to the real port, with
# no rules at all, with native mode and with the reference's template, at
# 10, 10k and 100k pairs.  Each figure is connections per second over a
# few seconds of back-to-back connect, banner, reset.
#
# usage: bench/connrate.sh [BUILD_DIR] [SECONDS]
#   TEMPLATE_MAX=N: largest size run in template mode (default 10000)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
SECS=${2:-3}
TEMPLATE_MAX=${TEMPLATE_MAX:-10000}
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces)"; exit 77; }
. "$SRC/scripts/topology.sh"

P=phr$$
T=$(mktemp -d /tmp/porthop-rate.XXXXXX)
cleanup() { topo_down "$P"; rm -rf "$T"; }
trap cleanup EXIT
topo_up "$P"
H="ip netns exec ${P}host"
$H "$BUILD/phsvc" serve 1 &
$H redis-server --port 6379 --bind 127.0.0.1 --save '' --daemonize yes --dir "$T" --logfile "$T/redis.log"
until $H redis-cli ping >/dev/null 2>&1; do sleep 0.05; done
until ip netns exec "${P}good" bash -c "exec 3<>/dev/tcp/10.0.0.2/1" 2>/dev/null; do sleep 0.05; done

# rate FROM PORT: the median of three runs of SECS seconds each.
rate() {
	for i in 1 2 3; do
		ip netns exec "${P}$1" "$BUILD/phsvc" rate 10.0.0.2 "$2" "$SECS"
	done | sort -n | sed -n 2p
}

# config MODE PAIRS: 10.0.0.3 (the bad client) plus filler addresses.
config() {
	local mode=$1 pairs=$2 np na paths=""
	if [ "$pairs" -lt 1000 ]; then np=$pairs; na=1; else np=1000; na=$((pairs / 1000)); fi
	[ "$mode" = template ] && paths="\"nft_startup_commands_path\": \"$SRC/examples/nft_startup_commands.json\", \"nft_address_rules_path\": \"$SRC/examples/nft_address_rules.json\","
	echo "{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", \"decode_responses\": true},"
	echo " \"redis_subscriber_configuration\": {\"subscriber_channel_names\": [\"bench\"]},"
	echo " \"porthopd\": {\"reconcile_interval_seconds\": 0},"
	echo " \"nftables_service_configuration\": {$paths \"max_port_number\": 65535,"
	echo "  \"tcp_ports\": [$(seq -s, 1 "$np")], \"watched_addresses\": [{\"ip\": \"10.0.0.3\"}"
	for i in $(seq 1 $((na - 1))); do echo ", {\"ip\": \"10.200.$((i / 250)).$((i % 250 + 1))\"}"; done
	echo "]}}"
}

# with_daemon MODE PAIRS: start porthopd, print "bad good" rates, stop it.
with_daemon() {
	local log=$T/porthopd.log pid moved
	config "$1" "$2" >"$T/cfg.json"
	: >"$log"
	ip netns exec "${P}host" "$BUILD/porthopd" -c "$T/cfg.json" -s "$T/control.sock" >>"$log" 2>&1 &
	pid=$!
	until grep -q subscribed "$log"; do
		kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
		sleep 0.1
	done
	moved=$(topo_redirects "$P" 10.0.0.3 | awk '$1 == 1 {print $2}')
	[ -n "$moved" ] || { echo "no redirect for port 1" >&2; exit 1; }
	echo "$(rate bad "$moved") $(rate good 1)"
	kill -TERM $pid; wait $pid || true
	$H nft flush ruleset
	# Conntrack entries of this round must not weigh on the next.
	$H conntrack -F >/dev/null 2>&1 || true
}

printf "%-8s %18s %24s %22s %24s %16s\n" pairs "no rules bad/good" "native bad (moved)" "native good" "template bad (moved)" "template good"
for pairs in 10 10000 100000; do
	# The baseline is measured again beside each size: the machine's
	# speed drifts over a run.
	base_bad=$(rate bad 1)
	base_good=$(rate good 1)
	read -r nb ng < <(with_daemon native "$pairs")
	tb="-"; tg="-"
	[ "$pairs" -le "$TEMPLATE_MAX" ] && read -r tb tg < <(with_daemon template "$pairs")
	rb=$(awk -v a="$nb" -v b="$base_bad" 'BEGIN {printf "%.2f", a / b}')
	rg=$(awk -v a="$ng" -v b="$base_good" 'BEGIN {printf "%.2f", a / b}')
	printf "%-8s %8s/%-8s %13s/s %5sx %13s/s %5sx %21s/s %14s/s\n" "$pairs" "$base_bad" "$base_good" "$nb" "$rb" "$ng" "$rg" "$tb" "$tg"
done
