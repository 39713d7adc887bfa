#!/usr/bin/env bash
# prestage: trigger to the new mapping in force, measured side by side in
# one run, each variant in a network namespace of its own:
#
#   switch   porthopd, native mode, prestage true: the next mapping staged
#            in the standby maps, a trigger switches the rules to them
#   replace  porthopd, prestage false: today's full replace (the maps
#            flushed and filled in one netlink batch)
#   floor    one raw libnftnl batch replacing the same elements
#            (bench/nlfloor), in a table of its own: the least a replace
#            at the trigger can cost
#
# "Trigger to in force" runs from the Redis message's arrival (porthopd's
# debug line "trigger on channel", stamped by -T) to the line that says
# the shuffle was applied, written once libnftables (switch) or the
# netlink batch (replace) has the kernel's acknowledgement.  Every trigger
# of "switch" waits for the standby to be ready first (a trigger that
# finds none falls back to the replace: see the steady run below).  The
# variants are interleaved round by round.  Also per size: porthopd's
# peak RSS (VmHWM) and the kernel memory charged to each daemon's memory
# cgroup (v1 memory.kmem.usage_in_bytes: its sets, maps, elements and
# rules; the daemon's own process memory is not in it), so "switch"
# minus "replace" is the standby generation's cost.
#
# A trigger every second under traffic: bench/prestage_steady.sh.
#
# usage: bench/prestage.sh [BUILD_DIR] [SIZES...]
#   default sizes: 10 100000 1000000 (pairs: 1,000 ports per address from
#   1,000 pairs on)
#   RUNS=N: triggers per variant and size (default 7)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
shift || true
[ $# -gt 0 ] && SIZES=("$@") || SIZES=(10 100000 1000000)
RUNS=${RUNS:-7}
require_root "network namespaces"
bench_tmp porthop-prestage
NSA=ph-psa-$$
NSB=ph-psb-$$
NSC=ph-psc-$$
for ns in "$NSA" "$NSB" "$NSC"; do
	ns_new "$ns"
done
redis_start "$NSA"
redis_start "$NSB"
CG=/sys/fs/cgroup/memory
cg_ok=0
if [ -d "$CG" ] && mkdir "$CG/ph-psa-$$" "$CG/ph-psb-$$" 2>/dev/null; then
	cg_ok=1
	on_exit cg_cleanup
fi
cg_cleanup() {
	rmdir "$CG/ph-psa-$$" "$CG/ph-psb-$$" 2>/dev/null || true
}

# addrs N: the first N addresses, as bench/reshuffle.sh and nlfloor
# number them.
addrs() {
	awk -v n="$1" 'BEGIN {for (i = 0; i < n; i++)
		printf "10.%d.%d.%d\n", int(i / 62500) % 250, int(i / 250) % 250, i % 250 + 1}'
}

# config PRESTAGE ADDRESSES PORTS > file
config() {
	echo "{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", \"decode_responses\": true},"
	echo " \"redis_subscriber_configuration\": {\"subscriber_channel_names\": [\"bench\"]},"
	echo " \"porthopd\": {\"reconcile_interval_seconds\": 0, \"state_directory\": \"\"},"
	echo " \"nftables_service_configuration\": {\"prestage\": $1, \"untrack_unwatched\": false,"
	echo "  \"max_port_number\": 65535, \"tcp_ports\": [$(seq -s, 1 "$3")],"
	echo "  \"watched_addresses\": ["
	addrs "$2" | awk 'NR > 1 {printf ",\n"} {printf "{\"ip\": \"%s\"}", $1}'
	echo "]}}"
}

# start NS CONFIG LOG CGROUP: porthopd in NS (in the memory cgroup, if
# any), its log LOG; its pid printed once its first mapping is in force.
start() {
	local ns=$1 cfg=$2 log=$3 cg=$4 pid
	: >"$log"
	if [ "$cg_ok" = 1 ]; then
		# Joined before ip netns exec, which mounts a sysfs of the
		# namespace's own over /sys.
		sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG/$cg" \
			ip netns exec "$ns" "$BUILD/porthopd" -c "$cfg" \
			-s "$T/$ns.sock" -v -T >>"$log" 2>&1 &
	else
		ip netns exec "$ns" "$BUILD/porthopd" -c "$cfg" -s "$T/$ns.sock" -v -T \
			>>"$log" 2>&1 &
	fi
	pid=$!
	LOG=$log WAIT_PID=$pid WAIT_POLL=0.01 wait_log "subscribed" 1 600
	echo "$pid"
}

# trigger NS LOG N: the N-th trigger; waits until it is in force.
trigger() {
	ip netns exec "$1" redis-cli PUBLISH bench '{}' >/dev/null
	LOG=$2 WAIT_POLL=0.005 wait_log "shuffle $(($3 + 1)) applied" 1 600
}

# staged LOG N: waits for the N-th staged mapping.
staged() {
	LOG=$1 WAIT_POLL=0.005 wait_log "the next mapping is staged" "$2" 600
}

# stop PID: SIGTERM, then waits until it is gone (not a child of ours).
stop() {
	kill -TERM "$1"
	WAIT_PID='' poll 60 lib_gone "$1" || true
}

lib_gone() {
	! kill -0 "$1" 2>/dev/null
}

kmem() {
	if [ "$cg_ok" = 1 ]; then
		awk '{printf "%.1f", $1 / 1048576}' "$CG/$1/memory.kmem.usage_in_bytes"
	else
		echo "-"
	fi
}

spread() {
	sort -n | awk '{a[NR] = $1} END {printf "%s-%s", a[1], a[NR]}'
}

echo "# $(nproc) CPUs, $(uname -r), $RUNS triggers per variant and size, interleaved"
printf "%-9s %11s %15s %11s %15s %11s %9s %9s %9s %9s %9s %9s\n" pairs switch "(spread)" replace "(spread)" floor "sw/floor" "rep/floor" "RSS sw" "RSS rep" "kmem sw" "kmem rep"
for size in "${SIZES[@]}"; do
	if [ "$size" -lt 1000 ]; then na=1; np=$size; else na=$((size / 1000)); np=1000; fi
	config true "$na" "$np" >"$T/a.json"
	config false "$na" "$np" >"$T/b.json"
	pa=$(start "$NSA" "$T/a.json" "$T/a.log" "ph-psa-$$")
	pb=$(start "$NSB" "$T/b.json" "$T/b.log" "ph-psb-$$")
	# The floor's table: the map alone, filled once, then replaced.
	ip netns exec "$NSC" nft -f - <<'NFT'
table inet porthop {
	map swap4 { type ipv4_addr . inet_proto . inet_service : inet_service; }
}
NFT
	ip netns exec "$NSC" "$BUILD/nlfloor" porthop "$na" "$np" >/dev/null
	staged "$T/a.log" 1
	sw=() rep=() fl=()
	for i in $(seq "$RUNS"); do
		staged "$T/a.log" "$i"
		trigger "$NSA" "$T/a.log" "$i"
		sw+=("$(trigger_latencies "$T/a.log" | sed -n "${i}p")")
		trigger "$NSB" "$T/b.log" "$i"
		rep+=("$(trigger_latencies "$T/b.log" | sed -n "${i}p")")
		fl+=("$(ip netns exec "$NSC" "$BUILD/nlfloor" porthop "$na" "$np")")
	done
	grep -c "switched to the staged mapping" "$T/a.log" | grep -qx "$RUNS" ||
		echo "# warning: not every trigger of switch was a switch" >&2
	staged "$T/a.log" $((RUNS + 1))
	ksw=$(kmem "ph-psa-$$")
	krep=$(kmem "ph-psb-$$")
	rss_a=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pa/status")
	rss_b=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pb/status")
	stop "$pa"
	stop "$pb"
	ip netns exec "$NSC" nft delete table inet porthop
	msw=$(printf "%s\n" "${sw[@]}" | median)
	mrep=$(printf "%s\n" "${rep[@]}" | median)
	mfl=$(printf "%s\n" "${fl[@]}" | median)
	printf "%-9s %8s ms %15s %8s ms %15s %8s ms %8sx %8sx %6s MB %6s MB %6s MB %6s MB\n" \
		"$size" "$msw" "$(printf "%s\n" "${sw[@]}" | spread)" \
		"$mrep" "$(printf "%s\n" "${rep[@]}" | spread)" "$mfl" \
		"$(awk -v a="$msw" -v b="$mfl" 'BEGIN {printf "%.3f", a / b}')" \
		"$(awk -v a="$mrep" -v b="$mfl" 'BEGIN {printf "%.2f", a / b}')" \
		"$rss_a" "$rss_b" "$ksw" "$krep"
done
