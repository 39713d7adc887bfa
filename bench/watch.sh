#!/usr/bin/env bash
# The runtime watch list's cost (docs/watch.md), measured side by side in
# one run, in a network namespace of its own, native mode, a state
# directory on the file system of /tmp.  Each figure has its floor beside
# it, measured in the same run: the least any design can cost.
#
#   one add     `watch add` of one address, from the client's request to
#               its reply (the mapping in force and the entry on disk),
#               with 10 runtime entries loaded and with 100,000 pairs
#               loaded, in two shapes: 1,000 TCP ports an address (100
#               addresses loaded) and 1 port an address (100,000
#               addresses).  ADDS adds one after the other, each deleted
#               again after its reply so that the load stays (the delete
#               is not timed); median and p99.  Floors: the same map
#               elements added to the same map by one raw libnftnl batch
#               (bench/nlfloor.c), and one fdatasync of a 64-byte append
#               on the state directory's file system
#               (bench/watchclient.c), medians and p99s of as many.
#   feed        `porthop watch add --file` of BIG addresses (1 port
#               each) on top of 10: the CLI's start, the request, the
#               reply.  Floor: one raw batch of the same elements into
#               the same map, plus one write and fdatasync of a file the
#               size of the state file afterwards.
#   restart     porthopd with BIG + 10 runtime entries in its state file:
#               from its spawn to "shuffle 1 applied" (every mapping in
#               force; the control socket opens right after), median of
#               RESTARTS.  Floor: the same addresses listed in the
#               configuration file, no state file.
#   sustained   RATE adds a second for LOAD_SECONDS seconds (one new
#               address each, 1 port) over CONNS connections side by
#               side (bench/watchclient.c load, open loop): replies ok,
#               latency, how late the schedule ran, map elements in the
#               kernel afterwards, porthopd's RSS before and after, and
#               the state file's fdatasyncs against the adds (group
#               commit; `porthop status --json`: runtime), and
#               where porthopd's loop went: its CPU, and the time its
#               commits took (write and fdatasync, the loop waiting),
#               beside one fdatasync of a small append alone, ADDS times
#               just before and just after the load.
#
# Clients talk to the control socket with control_call() from a small C
# client (bench/watchclient.c): a CLI process per request would measure
# the process start-up.  Unwatched clients are tracked
# (untrack_unwatched false, as in bench/reshuffle.sh), so an add changes
# the maps alone, which is what the raw batch does too.
#
# usage: bench/watch.sh [BUILD_DIR]
#   ADDS=N (200), BIG=N (100000), RESTARTS=N (3), RATE=N (10000),
#   LOAD_SECONDS=N (10), CONNS=N (16)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
ADDS=${ADDS:-200}
BIG=${BIG:-100000}
RESTARTS=${RESTARTS:-3}
RATE=${RATE:-10000}
LOAD_SECONDS=${LOAD_SECONDS:-10}
CONNS=${CONNS:-16}
require_tools jq nft
bench_ns_up
SOCK=$T/control.sock
WC=$BUILD/watchclient
# Addresses by index, as bench/nlfloor.c and watchclient number them:
# 0.. the loaded ones, ADD_AT.. the timed adds, LOAD_AT.. the sustained
# load's.
ADD_AT=500000
LOAD_AT=1000000
echo "# state directory: $T/state ($(df -T "$T" | awk 'NR == 2 {print $2}') on $(df "$T" | awk 'NR == 2 {print $1}'))"

# addrs FIRST N: the addresses FIRST..FIRST+N-1, one a line.
addrs() {
	awk -v f="$1" -v n="$2" 'BEGIN {for (i = f; i < f + n; i++)
		printf "10.%d.%d.%d\n", int(i / 62500) % 250, int(i / 250) % 250, i % 250 + 1}'
}

# config PORTS STATE_DIR [LISTED] > file: native mode, TCP ports
# 1..PORTS, the first LISTED addresses (default none) in the file.
config() {
	local np=$1 state=$2 na=${3:-0}
	echo "{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", \"decode_responses\": true},"
	echo " \"redis_subscriber_configuration\": {\"subscriber_channel_names\": [\"bench\"]},"
	echo " \"porthopd\": {\"reconcile_interval_seconds\": 0, \"state_directory\": \"$state\"},"
	echo " \"nftables_service_configuration\": {"
	echo "  \"remove_table_on_stop\": false, \"untrack_unwatched\": false,"
	echo "  \"max_port_number\": 65535, \"tcp_ports\": [$(seq -s, 1 "$np")],"
	echo "  \"watched_addresses\": ["
	addrs 0 "$na" | awk 'NR > 1 {printf ",\n"} {printf "{\"ip\": \"%s\"}", $1}'
	echo "]}}"
}

# feed FIRST N: `porthop watch add --file` of those addresses (origin
# feed); prints its milliseconds, checks that all were added.
feed() {
	local s e
	addrs "$1" "$2" >"$T/feed"
	s=${EPOCHREALTIME/[.,]/}
	nsx "$BUILD/porthop" watch -s "$SOCK" add --file "$T/feed" --origin feed >"$T/out"
	e=${EPOCHREALTIME/[.,]/}
	grep -q "$2 added" "$T/out" || fail "feed of $2: $(cat "$T/out")"
	awk -v d=$((e - s)) 'BEGIN {printf "%.1f\n", d / 1000}'
}

# stats: "median p99" of the numbers on standard input.
stats() {
	sort -n | awk '{a[NR] = $1} END {if (NR == 0) {print "- -"; exit}
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		p = a[int((NR - 1) * 0.99) + 1]; printf "%.2f %.2f\n", m, p}'
}

# status FIELD: a field of `porthop status --json`.
status() {
	nsx "$BUILD/porthop" status -s "$SOCK" --json | jq -r ".$1"
}

# cpu: porthopd's CPU seconds so far (user and system).
cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' /proc/$pid/stat
}

# rss: porthopd's "VmRSS VmHWM" in MB.
rss() {
	awk '/VmRSS/ {r = $2} /VmHWM/ {h = $2} END {printf "%.0f %.0f\n", r / 1024, h / 1024}' /proc/$pid/status
}

# latency_row SHAPE PORTS LOADED_ADDRESSES: one row of the first table.
# porthopd runs (started by the caller) with LOADED addresses; it is
# stopped here, and the floors measured against the same map.
latency_row() {
	local shape=$1 np=$2 na=$3 pairs lat lfloor sfloor
	pairs=$((np * na))
	lat=$(nsx "$WC" add "$SOCK" "$ADDS" "$ADD_AT" del | stats)
	porthopd_stop || true
	lfloor=$(nsx "$BUILD/nlfloor" porthop 1 "$np" "$ADD_AT" "$ADDS" | stats)
	sfloor=$(rm -f "$T/sync"; "$WC" sync "$T/sync" "$ADDS" | stats)
	# median p99 for each: add, raw batch, fdatasync.
	set -- $lat $lfloor $sfloor
	printf "%-22s %9s %9s %9s %9s %9s %9s %9s %9s\n" "$shape" "$na" "$pairs" \
		"$1" "$2" "$3" "$4" "$5" "$6"
}

printf "## one watch add: request to reply (ms), %s adds, each deleted again; goal: under 5 ms\n" "$ADDS"
printf "%-22s %9s %9s %9s %9s %9s %9s %9s %9s\n" shape addresses pairs \
	"median" "p99" "raw med" "raw p99" "sync med" "sync p99"

# (a) 1,000 ports an address: 10 addresses, then 100.
mkdir -p "$T/state-a"
config 1000 "$T/state-a" >"$T/a.json"
bench_porthopd "$T/a.json"
feed 0 10 >/dev/null
latency_row "1000 ports/address" 1000 10
bench_porthopd "$T/a.json"
feed 10 90 >/dev/null
latency_row "1000 ports/address" 1000 100
nsx nft delete table inet porthop

# (b) 1 port an address: 10 addresses, then BIG more through a feed.
mkdir -p "$T/state-b"
config 1 "$T/state-b" >"$T/b.json"
bench_porthopd "$T/b.json"
feed 0 10 >/dev/null
latency_row "1 port/address" 1 10
# The feed's floor against the map as the feed finds it (10 loaded).
feed_nl=$(nsx "$BUILD/nlfloor" porthop "$BIG" 1 10 1)
bench_porthopd "$T/b.json"
feed_ms=$(feed 10 "$BIG")
statebytes=$(stat -c %s "$T/state-b/runtime.state")
latency_row "1 port/address" 1 $((BIG + 10))
feed_wr=$("$WC" write "$T/writefloor" "$statebytes")
rm -f "$T/writefloor"

echo
echo "## a feed of $BIG addresses (1 port each) on top of 10: porthop watch add --file; goal: under 1 s"
printf "%-12s %12s %12s %12s %12s %12s\n" total "raw batch" "write+sync" floor "x floor" "state file"
awk -v t="$feed_ms" -v n="$feed_nl" -v w="$feed_wr" -v b="$statebytes" 'BEGIN {
	printf "%9.1f ms %9.1f ms %9.1f ms %9.1f ms %11.2fx %9.1f MB\n", t, n, w, n + w, t / (n + w), b / 1048576}'

# restart CONFIG: from spawn to "shuffle 1 applied", ms; the pairs it
# applied on stdout after the time.
restart() {
	local t0 t1 pairs
	nsx nft delete table inet porthop 2>/dev/null || true
	: >"$LOG"
	t0=$EPOCHREALTIME
	porthopd_spawn "$NS" -c "$1" -s "$SOCK" -T
	pid=$PORTHOPD_PID
	WAIT_PID=$pid WAIT_POLL=0.01 wait_log "shuffle 1 applied" 1 120
	t1=$(grep -m1 "shuffle 1 applied" "$LOG" | awk '{print $1}')
	pairs=$(grep -m1 "shuffle 1 applied" "$LOG" | sed 's/.*: \([0-9]*\) pairs.*/\1/')
	porthopd_stop || true
	awk -v a="$t0" -v b="$t1" -v p="$pairs" 'BEGIN {printf "%.1f %s\n", (b - a) * 1000, p}'
}

echo
echo "## restart with $((BIG + 10)) runtime entries: spawn to \"shuffle 1 applied\" (ms), median of $RESTARTS; goal: under 2 s"
mkdir -p "$T/state-f"
config 1 "$T/state-f" $((BIG + 10)) >"$T/listed.json"
: >"$T/r.state"
: >"$T/r.listed"
for i in $(seq "$RESTARTS"); do
	# Alternated, so that the machine's moments fall on both alike.
	restart "$T/b.json" >>"$T/r.state"
	restart "$T/listed.json" >>"$T/r.listed"
done
p_state=$(awk '{print $2}' "$T/r.state" | sort -u | tr '\n' ' ')
p_listed=$(awk '{print $2}' "$T/r.listed" | sort -u | tr '\n' ' ')
[ "$p_state" = "$((BIG + 10)) " ] || fail "restart from the state file applied $p_state pairs"
[ "$p_listed" = "$((BIG + 10)) " ] || fail "restart from the listed file applied $p_listed pairs"
printf "%-14s %-14s %-10s %s\n" "state file" "floor: listed" "x floor" "each run (state / listed)"
r_state=$(awk '{print $1}' "$T/r.state" | median)
r_listed=$(awk '{print $1}' "$T/r.listed" | median)
printf "%8.1f ms    %8.1f ms    %6.2fx    %s / %s\n" "$r_state" "$r_listed" \
	"$(awk -v a="$r_state" -v b="$r_listed" 'BEGIN {print a / b}')" \
	"$(awk '{printf "%s ", $1}' "$T/r.state")" "$(awk '{printf "%s ", $1}' "$T/r.listed")"
nsx nft delete table inet porthop

echo
echo "## sustained: $RATE adds/s for $LOAD_SECONDS s over $CONNS connections, 1 port an address, 10 loaded; goal: all acknowledged, in force, on time"
mkdir -p "$T/state-l"
config 1 "$T/state-l" >"$T/l.json"
bench_porthopd "$T/l.json"
feed 0 10 >/dev/null
read -r rss0 hwm0 < <(rss)
sync_before=$(rm -f "$T/sync"; "$WC" sync "$T/sync" "$ADDS" | stats)
syncs0=$(status runtime.state_file.syncs)
commits0=$(status runtime.state_file.commits)
cms0=$(status runtime.state_file.commit_ms)
cpu0=$(cpu)
read -r sent ok failed secs p50 p99 max late < <(nsx "$WC" load "$SOCK" "$CONNS" "$RATE" "$LOAD_SECONDS" "$LOAD_AT" || true)
cpu1=$(cpu)
read -r rss1 hwm1 < <(rss)
syncs=$(( $(status runtime.state_file.syncs) - syncs0 ))
commits=$(( $(status runtime.state_file.commits) - commits0 ))
cms=$(awk -v a="$cms0" -v b="$(status runtime.state_file.commit_ms)" 'BEGIN {printf "%.0f", b - a}')
rewrites=$(status runtime.state_file.rewrites)
entries=$(status runtime.entries)
sync_after=$(rm -f "$T/sync"; "$WC" sync "$T/sync" "$ADDS" | stats)
elems=$(nsx nft -j list map inet porthop swap4 | jq '[.nftables[] | select(.map) | .map.elem // [] | length] | add')
porthopd_stop || true
printf "%-26s %s\n" "requests" "$sent"
printf "%-26s %s (failed %s)\n" "acknowledged ok" "$ok" "$failed"
printf "%-26s %s s (%s adds/s; schedule at most %s ms late)\n" "took" "$secs" \
	"$(awk -v n="$ok" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')" "$late"
printf "%-26s median %s ms, p99 %s ms, max %s ms\n" "request to reply" "$p50" "$p99" "$max"
printf "%-26s %s (expected %s)\n" "runtime entries" "$entries" $((ok + 10))
printf "%-26s %s (expected %s)\n" "swap4 elements" "$elems" $((2 * (ok + 10)))
printf "%-26s %s (%s group commits; %s snapshots in all; %.1f adds a sync)\n" "fdatasyncs" "$syncs" \
	"$commits" "$rewrites" "$(awk -v a="$ok" -v s="$syncs" 'BEGIN {print s ? a / s : 0}')"
printf "%-26s %s MB before, %s MB after (peak %s MB, %s MB before)\n" "porthopd RSS" "$rss0" "$rss1" "$hwm1" "$hwm0"
# Where porthopd's loop went: its CPU, and its waits on the disk (the
# commits' write and fdatasync, timed by porthopd itself).  Both together
# near the run's length: the loop was saturated.
awk -v c0="$cpu0" -v c1="$cpu1" -v s="$secs" -v n="$ok" -v ms="$cms" -v k="$commits" 'BEGIN {
	printf "%-26s %.2f s CPU (%.0f us an add) + %.2f s in commits (%.2f ms each) of %.2f s\n",
		"porthopd loop", c1 - c0, (c1 - c0) * 1e6 / n, ms / 1000, ms / k, s}'
set -- $sync_before $sync_after
printf "%-26s median %s ms, p99 %s ms before the load; %s ms, %s ms after\n" "floor: fdatasync alone" "$1" "$2" "$3" "$4"
