#!/usr/bin/env bash
# The fleet feed at scale, simulated on this machine (docs/fleet.md):
# HOSTS porthopd instances, each in a network namespace of its own, one
# Redis primary, one replica and three sentinels (down-after 1 s), all on
# one bridge (scripts/fleet.sh).  Run by hand, not in CI; prints a table.
#
#   load      RATE watch operations a second for LOAD_SECONDS seconds (one
#             new address each, TTL 1 h, signed, WAIT 0) from one publisher
#             (bench/fleetload.c: fleetpub, one script call each, open
#             loop).  For each operation, the delay from its XADD (its
#             stream ID's time: Redis' clock, this machine's) to its apply
#             in the kernel of each host (porthopd -vv traces every entry
#             it applies); "in force on all" is the slowest host's delay.
#             p50, p99, max of that, and the share within 100 ms.  Beside
#             it, the floor of this machine: the same per-host delay seen
#             by ONE host alone (the other hosts stopped), same load.
#             The floor of HOSTS hosts on this machine: HOSTS processes
#             (bench/nlfloor, each in a host's namespace, the hosts
#             stopped) take the same operations on the same schedule, each
#             in a loop: every operation due by now added to a map like
#             porthop's in one netlink transaction, then one fdatasync;
#             per operation the slowest process's delay from its due time
#             to its transaction.  No Redis, no JSON, no reading: the least
#             any design with a kernel transaction and durable state per
#             batch costs here, HOSTS at once on these cores.
#             The floor of HOSTS stream readers: the same, but HOSTS
#             processes (nlfloor's stream mode) read the stream itself, as
#             porthopd does (a consumer group each, 256 entries a read,
#             the publisher's same load), and acknowledge each read after
#             its transaction and fdatasync: the least any design that
#             follows the stream through Redis costs here (no decoding, no
#             signature checked).  Both floors also without fdatasync.
#             With BASE=BUILD_DIR (another build, e.g. main before a
#             change), the HOSTS-host load runs with that build's porthopd
#             too; ROUNDS rounds, each: BASE's hosts, this build's hosts,
#             the HOSTS-process floor, in turn (BASE and this build
#             first in turn: the second starts right after the first's
#             hosts stopped, with more entries); medians and ranges.
#             With INTERVALS="A B ...", this build's hosts run once per
#             value of redis_stream_configuration.read_interval_ms in
#             each round (default: porthopd's default, unsized and
#             sized for twice the load's addresses); a value
#             MS/CAP also sets nftables_service_configuration.map_capacity
#             to CAP (the swap maps sized up front: the kernel never grows
#             their hash table, which it otherwise does in every host at
#             the same moment, as the hosts' maps fill alike).  The floors
#             add 6 elements an operation (porthop's: 3 services, both
#             ways) to a map sized like the largest CAP given (unsized
#             without one).  Every
#             variant starts after all its hosts caught up and their CPU
#             settled (under 5% of a core over a second), so that no
#             variant pays for the start of the hosts before it.
#             The same load again with the hosts' state_directory "" (no
#             state file, no fdatasync): what 50 group commits on one disk
#             cost.
#   cost      Redis' CPU over the load (utime + stime of the primary, /
#             the load's wall time), each porthopd's RSS after it (min,
#             median, max), the hosts' CPU (all of them together).
#   failover  FO_RATE operations a second; after FO_KILL_AFTER seconds the
#             primary is killed (kill -9); the sentinels promote the
#             replica.  Per host: from the kill to its first entry applied
#             that was written to the new primary (after the publisher's
#             first failure; median, max), and to its stream following the
#             new primary; the
#             publisher's outage (first failed send to first success
#             after it).
#
# usage: bench/fleet.sh [BUILD_DIR]
#   HOSTS=N (50), RATE=N (1000), LOAD_SECONDS=N (10), FO_RATE=N (200),
#   FO_SECONDS=N (12), FO_KILL_AFTER=N (4), ROUNDS=N (1), BASE=BUILD_DIR,
#   INTERVALS="MS[/CAP] ..." (porthopd's default, without and with
#   map_capacity 2 x RATE x LOAD_SECONDS), KEEP=DIR (each variant's host
#   logs copied to DIR/ROUND-VARIANT), PROFILE=FILE (perf record -a
#   of the whole machine over the first HOSTS-host load, to FILE),
#   SKIP="PART ..." (parts not run, for a quicker look while working:
#   alone, floor (the HOSTS-process floors), sfloor (the stream readers'),
#   nostate, failover; their figures then "-")
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
HOSTS=${HOSTS:-50}
RATE=${RATE:-1000}
LOAD_SECONDS=${LOAD_SECONDS:-10}
FO_RATE=${FO_RATE:-200}
FO_SECONDS=${FO_SECONDS:-12}
FO_KILL_AFTER=${FO_KILL_AFTER:-4}
ROUNDS=${ROUNDS:-1}
# By default porthopd's read interval twice: maps unsized, and sized for
# twice the load's addresses.
INTERVALS=${INTERVALS:-"default default/$((2 * RATE * LOAD_SECONDS))"}
BASE=${BASE:+$(cd "$BASE" && pwd)}
[ -z "$BASE" ] || bench_build_note "$BASE" | sed 's/^# build:/# BASE build:/'
require_root "network namespaces"
require_tools jq redis-server redis-cli
bench_tmp porthop-fleet
. "$SRC/scripts/fleet.sh"
PORTHOP=$BUILD/porthop

P=phb$$
R1=10.77.0.2 R2=10.77.0.3
fleet_net_up $P
fleet_node $P-r1 $R1
fleet_node $P-r2 $R2
fleet_node $P-pub 10.77.0.100
for i in 1 2 3; do fleet_node $P-s$i 10.77.0.1$i; done
for i in $(seq 1 "$HOSTS"); do fleet_node $P-h$i 10.77.$((1 + i / 250)).$((i % 250 + 1)); done
fleet_redis_primary $P-r1 $R1
fleet_redis_replica $P-r2 $R2 $R1
for i in 1 2 3; do fleet_sentinel $P-s$i 10.77.0.1$i $R1; done
# Redis, its sentinels and the publisher stand for machines of their own:
# they run at a higher priority (nice -10), so that the load is the one
# asked for however busy the hosts are (at the same priority the
# publisher fell behind its schedule and caught up in bursts, each burst
# then 50 hosts' work at once), and the sentinels see their primary.
# The hosts share what is left of the cores.
for pf in "$T"/redis-*/pid "$T"/sentinel-*/pid; do renice -n -10 -p "$(cat "$pf")" >/dev/null; done

head -c 48 /dev/urandom | base64 | head -c 48 >"$T/key"
chmod 600 "$T/key"
REDIS=$(jq -n --arg r $R1 '{host: $r, master_name: "porthop",
	sentinels: [{host: "10.77.0.11", port: 26379}, {host: "10.77.0.12", port: 26379},
		    {host: "10.77.0.13", port: 26379}], connect_timeout_ms: 500}')
for c in $(seq 1 "$HOSTS") pub; do
	fleet_config "$T/h$c.json" "h$c" "$REDIS" '{"maxlen": 200000, "resync_interval_seconds": 60}'
	jq --arg k "$T/key" '.porthopd.trigger_key_file = $k' "$T/h$c.json" >"$T/h$c.tmp"
	mv "$T/h$c.tmp" "$T/h$c.json"
done
start_hosts() {	# start_hosts HOSTS...: with $BUILD's porthopd
	local i
	for i in "$@"; do fleet_host_start "$i" $P-h$i "$T/h$i.json" -T -v -v; done
}
stop_hosts() {
	local i
	for i in "$@"; do PORTHOPD_PID=$(fleet_host_pid "$i") porthopd_stop || true; done
}
all_caught_up() {
	local i
	for i in "$@"; do fleet_caught_up "$i" || return 1; done
}
ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat"
}
hosts_ticks() {
	local i t=0
	for i in "$@"; do t=$((t + $(ticks "$(fleet_host_pid "$i")"))); done
	echo $t
}
HZ=$(getconf CLK_TCK)
# reset: the fleet as at the start (the hosts stopped): the stream, its
# groups and its snapshot deleted, the hosts' state files removed; every
# variant and floor then starts from the same state (before, the entries
# of every load stayed, 10,000 more a host for each, and the later a
# variant ran in a round, the worse it fared, whichever build).
reset() {
	local prim i
	prim=$(primary)
	ip netns exec $P-pub redis-cli -h "$prim" DEL porthop:feed porthop:feed:snapshot \
		porthop:feed:snapshot:pos porthop:feed:snapshot:expiry >/dev/null
	for i in $ALL; do rm -rf "$T/state-h$i"; done
}
# settle HOSTS...: every host caught up, and the hosts' CPU under 5% of a
# core over a second (their start's work done); 60 s at most.
settle() {
	local a b k
	WAIT_PID='' wait_for 120 "every host to catch up" all_caught_up "$@"
	for k in $(seq 1 60); do
		a=$(hosts_ticks "$@")
		sleep 1
		b=$(hosts_ticks "$@")
		[ $(( (b - a) * 100 )) -lt $((5 * HZ)) ] && return 0
	done
	echo "# warning: the hosts' CPU did not settle (last: $((b - a)) ticks a second)" >&2
}
# set_interval MS[/CAP]|default|base: the hosts' read_interval_ms (base:
# none, for BASE's parser; default: porthopd's default) and map_capacity
# (CAP; none without it).
set_interval() {
	local i f iv=${1%%/*} cap=
	case $1 in */*) cap=${1#*/} ;; esac
	for i in $ALL; do
		f=$T/h$i.json
		case $iv in
		base|default) jq 'del(.redis_stream_configuration.read_interval_ms)' "$f" ;;
		*) jq --argjson v "$iv" '.redis_stream_configuration.read_interval_ms = $v' "$f" ;;
		esac | if [ -n "$cap" ]; then
			jq --argjson c "$cap" '.nftables_service_configuration.map_capacity = $c'
		else
			jq 'del(.nftables_service_configuration.map_capacity)'
		fi >"$f.tmp"
		mv "$f.tmp" "$f"
	done
}
# The floors' map: porthop's swap4 type, sized like the largest CAP of
# INTERVALS (6 elements an address), or not.
FLOOR_CAP=$(for v in $INTERVALS; do case $v in */*) echo "${v#*/}" ;; esac; done | sort -n | tail -1)
FLOOR_MAP="map swap4 { type ipv4_addr . inet_proto . inet_service : inet_service;${FLOOR_CAP:+ size $((FLOOR_CAP * 6));} }"
# primary: the server the sentinels name now (on a machine starved of
# CPU they may fail over without a kill: the figures follow the primary).
primary() {
	ip netns exec $P-s1 redis-cli -h 10.77.0.11 -p 26379 \
		sentinel get-master-addr-by-name "$FLEET_MASTER" | head -1
}

# delays FIRST LAST LOGS...: per operation (stream IDs of entries whose
# trace lines are in the logs, applied after epoch FIRST ms and before
# LAST), the slowest host's delay in ms, one a line.
delays() {
	local since=$1
	shift
	# A trace line: "TIME porthopd: debug: fleet: applied ID MS [ID MS
	# ...] ms".
	awk -v since="$since" '/fleet: applied / {
			t = $1 * 1000; if (t < since) next
			for (k = 1; k <= NF && $k != "applied"; k++) ;
			for (k++; k < NF && $k != "ms"; k += 2) {
				id = $k; d = $(k + 1) + 0
				if (!(id in m) || d > m[id]) m[id] = d
			}
		} END { for (id in m) print m[id] }' "$@"
}
pct() {	# pct P: the P-th percentile of the numbers on stdin
	sort -n | awk -v p="$1" '{a[NR] = $1} END {if (NR == 0) {print "-"; exit}
		i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print a[i]}'
}
summary() {	# summary FILE: "p50 p99 max within100%"
	local f=$1
	printf '%s %s %s %s' "$(pct 50 <"$f")" "$(pct 99 <"$f")" "$(pct 100 <"$f")" \
		"$(awk '{n++; if ($1 <= 100) k++} END {printf "%.1f", n ? 100 * k / n : 0}' "$f")"
}
# spread FILE COL: "median (min-max)" of column COL of FILE's summaries.
spread() {
	local v
	v=$(awk -v c="$2" '$c != "-" {print $c}' "$1" | sort -n)
	[ -n "$v" ] || { echo -; return; }
	echo "$(echo "$v" | median) ($(echo "$v" | head -1)-$(echo "$v" | tail -1))"
}
# floor_run FIRST SYNC HOSTS...: the HOSTS-process floor (see the top) on
# the load's schedule, with an fdatasync per batch (SYNC 1) or without;
# the slowest process's delay per operation to $T/delays.
floor_run() {
	local first=$1 sync=$2 start i pids=()
	shift 2
	# A map of porthop's swap4 type in a table of the floor's own.
	for i in "$@"; do
		ip netns exec $P-h$i nft -f - <<-EOF
		table inet phfloor {
			$FLOOR_MAP
		}
		EOF
	done
	start=$(( ${EPOCHREALTIME/[.,]/} / 1000 + 1000 ))
	for i in "$@"; do
		ip netns exec $P-h$i "$BUILD/nlfloor" phfloor 0 6 "$first" "$RATE" \
			"$LOAD_SECONDS" "$start" "$([ "$sync" = 1 ] && echo "$T/floor-sync.$i" || echo -)" \
			>"$T/floor.$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || echo "# warning: a floor process failed" >&2; done
	for i in "$@"; do ip netns exec $P-h$i nft delete table inet phfloor; done
	# One column per process: the slowest per line (operation).
	local outs=()
	for i in "$@"; do outs+=("$T/floor.$i"); done
	paste "${outs[@]}" |
		awk '{m = $1; for (k = 2; k <= NF; k++) if ($k > m) m = $k; print m}' >"$T/delays"
}

# stream_floor_run FIRST SYNC HOSTS...: the HOSTS-process floor of a
# design that reads the stream (nlfloor's stream mode, each process in a
# host's namespace with a consumer group of its own, the hosts stopped):
# the publisher's same load; each read's entries in one transaction, an
# fdatasync (SYNC 1) or not, one XACK; per operation the slowest
# process's delay from its XADD, to $T/delays.
stream_floor_run() {
	local first=$1 sync=$2 i pids=() prim
	shift 2
	prim=$(primary)
	for i in "$@"; do
		ip netns exec $P-h$i nft -f - <<-EOF
		table inet phfloor {
			$FLOOR_MAP
		}
		EOF
		ip netns exec $P-pub redis-cli -h "$prim" XGROUP CREATE porthop:feed "floor$i" '$' MKSTREAM >/dev/null
	done
	for i in "$@"; do
		ip netns exec $P-h$i "$BUILD/nlfloor" phfloor 0 6 stream "$prim" 6379 porthop:feed "floor$i" \
			$((RATE * LOAD_SECONDS)) "$([ "$sync" = 1 ] && echo "$T/sfloor-sync.$i" || echo -)" 0 \
			>"$T/sfloor.$i" 2>"$T/sfloor-cpu.$i" &
		pids+=($!)
	done
	local t0=$EPOCHREALTIME
	nice -n -10 ip netns exec $P-pub "$BUILD/fleetload" "$T/hpub.json" "$RATE" "$LOAD_SECONDS" "$first" >"$T/load.out"
	for i in "${pids[@]}"; do wait "$i" || echo "# warning: a stream floor process failed" >&2; done
	# The readers' CPU, all together, over the load (as HOSTS_CPU).
	SFLOOR_CPU=$(cat "$T"/sfloor-cpu.* | awk -v t0="$t0" -v t1="$EPOCHREALTIME" \
		'$1 == "cpu" {s += $2} END {printf "%.0f", 100 * s / (t1 - t0)}')
	for i in "$@"; do
		ip netns exec $P-h$i nft delete table inet phfloor
		ip netns exec $P-pub redis-cli -h "$prim" XGROUP DESTROY porthop:feed "floor$i" >/dev/null
	done
	cat "$T"/sfloor.[0-9]* | awk '{ if (!($1 in m) || $2 > m[$1]) m[$1] = $2 }
		END { for (id in m) print m[id] }' >"$T/delays"
}

load_run() {	# load_run FIRST_ADDR HOSTS...: RATE ops for LOAD_SECONDS; delays to $T/delays
	local first=$1 since r0 r1 h0 h1 t0 t1
	shift
	since=$(( ${EPOCHREALTIME/[.,]/} / 1000 ))
	local prim
	prim=$(primary)
	r0=$(ticks "$(cat "$T/redis-$prim/pid")")
	h0=$(hosts_ticks "$@")
	t0=$EPOCHREALTIME
	local perf=
	if [ -n "${PROFILE:-}" ] && [ $# -gt 1 ] && [ ! -e "$PROFILE" ]; then
		perf record -a -g -F 499 -o "$PROFILE" -- sleep "$LOAD_SECONDS" 2>/dev/null &
		perf=$!
	fi
	nice -n -10 ip netns exec $P-pub "$BUILD/fleetload" "$T/hpub.json" "$RATE" "$LOAD_SECONDS" "$first" >"$T/load.out"
	[ -z "$perf" ] || wait "$perf" || true
	WAIT_PID='' wait_for 300 "every host to catch up" all_caught_up "$@"
	t1=$EPOCHREALTIME
	r1=$(ticks "$(cat "$T/redis-$prim/pid")")
	h1=$(hosts_ticks "$@")
	local logs=()
	for i in "$@"; do logs+=("$T/h$i.log"); done
	delays "$since" "${logs[@]}" >"$T/delays"
	REDIS_CPU=$(awk -v a="$r0" -v b="$r1" -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
		'BEGIN {printf "%.0f", 100 * (b - a) / hz / (t1 - t0)}')
	HOSTS_CPU=$(awk -v a="$h0" -v b="$h1" -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
		'BEGIN {printf "%.0f", 100 * (b - a) / hz / (t1 - t0)}')
	[ "$(wc -l <"$T/delays")" -eq $((RATE * LOAD_SECONDS)) ] ||
		echo "# warning: $(wc -l <"$T/delays") operations traced, $((RATE * LOAD_SECONDS)) sent" >&2
}

ALL=$(seq 1 "$HOSTS")
skip() {	# skip PART: true if SKIP names it
	case " ${SKIP:-} " in *" $1 "*) return 0 ;; esac
	return 1
}
sentinels_ready() {
	local i
	for i in 1 2 3; do fleet_sentinel_ready $P-s$i 10.77.0.1$i 3 || return 1; done
}
wait_for 30 "the sentinels to know the replica and each other" sentinels_ready

# The floor: one host alone under the same load.
floor="- - - -" floor_cpu=-
if ! skip alone; then
	set_interval "${INTERVALS%% *}"
	reset
	start_hosts 1
	settle 1
	load_run 1000 1
	floor=$(summary "$T/delays")
	floor_cpu=$HOSTS_CPU
	stop_hosts 1
	echo "# floor (1 host): $floor"
fi

# HOSTS hosts, and the HOSTS-process floor; with BASE, BASE's hosts too;
# ROUNDS rounds, interleaved.
next=$((1000 + RATE * LOAD_SECONDS))
VARIANTS="${BASE:+base}"
# A variant's name: new.MS or new.MS_CAP (a file name).
for iv in $INTERVALS; do VARIANTS="$VARIANTS new.${iv/\//_}"; done
NEW1=new.${INTERVALS%% *}
NEW1=${NEW1/\//_}
for v in $VARIANTS floor floor0 sfloor sfloor0; do : >"$T/res.$v"; done
for round in $(seq 1 "$ROUNDS"); do
	# The order rotates from round to round.
	order=$(echo $VARIANTS | tr ' ' '\n' | awk -v r="$round" '{a[NR] = $0}
		END {for (k = 0; k < NR; k++) print a[(k + r - 1) % NR + 1]}')
	for variant in $order; do
		if [ "$variant" = base ]; then b=$BASE; else b=$BUILD; fi
		v2=${variant#new.}
		set_interval "${v2/_//}"
		reset
		BUILD=$b start_hosts $ALL
		settle $ALL
		load_run "$next" $ALL
		next=$((next + RATE * LOAD_SECONDS))
		echo "$(summary "$T/delays") $REDIS_CPU $HOSTS_CPU" >>"$T/res.$variant"
		echo "# round $round, $variant: $HOSTS hosts: $(tail -1 "$T/res.$variant") (p50 p99 max within100% redis% hosts%); the publisher's last operation $(awk '{print $8}' "$T/load.out") ms behind its schedule"
		if [ -n "${KEEP:-}" ]; then
			mkdir -p "$KEEP/$round-$variant"
			for i in $ALL; do cp "$T/h$i.log" "$KEEP/$round-$variant/"; done
		fi
		if [ "$variant" = "$NEW1" ]; then
			rss=$(for i in $ALL; do awk '/^VmRSS/ {print $2}' "/proc/$(fleet_host_pid "$i")/status"; done | sort -n)
			entries=$(fleet_list 1 | wc -l)
		fi
		stop_hosts $ALL
	done
	if ! skip floor; then
		reset
		floor_run "$next" 1 $ALL
		next=$((next + RATE * LOAD_SECONDS))
		echo "$(summary "$T/delays")" >>"$T/res.floor"
		echo "# round $round, floor of $HOSTS processes: $(tail -1 "$T/res.floor")"
		floor_run "$next" 0 $ALL
		next=$((next + RATE * LOAD_SECONDS))
		echo "$(summary "$T/delays")" >>"$T/res.floor0"
		echo "# round $round, floor of $HOSTS processes, no fdatasync: $(tail -1 "$T/res.floor0")"
	fi
	skip sfloor && continue
	reset
	stream_floor_run "$next" 1 $ALL
	next=$((next + RATE * LOAD_SECONDS))
	echo "$(summary "$T/delays") - $SFLOOR_CPU" >>"$T/res.sfloor"
	echo "# round $round, floor of $HOSTS stream readers: $(tail -1 "$T/res.sfloor") (readers' CPU, % of $(( $(nproc) * 100 ))); the publisher's last operation $(awk '{print $8}' "$T/load.out") ms behind"
	reset
	stream_floor_run "$next" 0 $ALL
	next=$((next + RATE * LOAD_SECONDS))
	echo "$(summary "$T/delays") - $SFLOOR_CPU" >>"$T/res.sfloor0"
	echo "# round $round, floor of $HOSTS stream readers, no fdatasync: $(tail -1 "$T/res.sfloor0") (readers' CPU)"
done
rss_min=$(echo "$rss" | head -1) rss_max=$(echo "$rss" | tail -1)
rss_med=$(echo "$rss" | median)

# The same hosts without a state file (state_directory ""): what the
# group commit's fdatasync, 50 of them on one disk, costs.
nostate="- - - -" nostate_cpu=-
if ! skip nostate; then
	set_interval "${INTERVALS%% *}"
	for i in $ALL; do
		jq '.porthopd.state_directory = ""' "$T/h$i.json" >"$T/h$i.tmp"
		mv "$T/h$i.tmp" "$T/h$i.json"
	done
	reset
	start_hosts $ALL
	settle $ALL
	load_run "$next" $ALL
	nostate=$(summary "$T/delays")
	nostate_cpu=$HOSTS_CPU
	echo "# $HOSTS hosts, no state file: $nostate"
fi

# Failover under load.
: >"$T/fo.apply"
: >"$T/fo.follow"
out_s=0 out_e=0
if ! skip failover; then
	fo_since=$(( ${EPOCHREALTIME/[.,]/} / 1000 ))
	nice -n -10 ip netns exec $P-pub "$BUILD/fleetload" "$T/hpub.json" "$FO_RATE" "$FO_SECONDS" 2000000 >"$T/fo.out" &
	loader=$!
	WAIT_PID='' poll "$FO_KILL_AFTER" false || true
	kill_ms=$(( ${EPOCHREALTIME/[.,]/} / 1000 ))
	OLD=$(primary)
	if [ "$OLD" = "$R1" ]; then NEW=$R2; else NEW=$R1; fi
	[ "$OLD" = "$R1" ] || echo "# note: the sentinels had failed over without a kill; killing $OLD" >&2
	kill -9 "$(cat "$T/redis-$OLD/pid")"
	wait $loader
	on_new() {
		local i
		for i in $ALL; do
			[ "$(fleet_stream_field "$i" primary)" = "$NEW:6379" ] && fleet_caught_up "$i" || return 1
		done
	}
	WAIT_PID='' wait_for 120 "every host on the new primary" on_new
	read -r _ _ _ _ _ _ _ _ _ out_s _ out_e <"$T/fo.out"
	for i in $ALL; do
		# An entry written after the publisher's first failure: on the new
		# primary (the old one may take a last entry in the instant between
		# the kill's time and its death).
		awk -v k="$kill_ms" -v f="$out_s" '/fleet: applied / {
			for (j = 1; j <= NF && $j != "applied"; j++) ;
			for (j++; j < NF && $j != "ms"; j += 2) { split($j, id, "-")
				if (id[1] > f) { printf "%.0f\n", $1 * 1000 - k; exit } } }' "$T/h$i.log"
	done | sort -n >"$T/fo.apply"
	for i in $ALL; do
		awk -v k="$kill_ms" '/fleet: stream .*group/ { t = $1 * 1000; if (t > k) { printf "%.0f\n", t - k; exit } }' "$T/h$i.log"
	done | sort -n >"$T/fo.follow"
	[ "$(wc -l <"$T/fo.apply")" -eq "$HOSTS" ] || echo "# warning: $(wc -l <"$T/fo.apply") of $HOSTS hosts applied entries after the kill" >&2
fi

row() {	# row NAME FILE: medians (ranges) of the rounds' columns
	local f=$2 c
	c=$(awk '{print NF; exit}' "$f")
	if [ "${c:-0}" -ge 6 ]; then
		echo "| $1 | $(spread "$f" 1) | $(spread "$f" 2) | $(spread "$f" 3) | $(spread "$f" 4) | $(spread "$f" 5) | $(spread "$f" 6) |"
	else
		echo "| $1 | $(spread "$f" 1) | $(spread "$f" 2) | $(spread "$f" 3) | $(spread "$f" 4) | - | - |"
	fi
}
echo "# fleet: $HOSTS porthopd in namespaces, one stream, primary + replica + 3 sentinels"
echo "# machine: $(nproc) cores; load: $RATE watch ops/s for $LOAD_SECONDS s, signed, one script call each"
echo "# an op in force on all $HOSTS hosts, from XADD (ms): median (range) of $ROUNDS rounds; goal p99 <= 100"
echo "| variant | p50 | p99 | max | within 100 ms (%) | Redis CPU (% of a core) | porthopd CPU, all hosts (% of $(( $(nproc) * 100 ))) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for v in $VARIANTS; do
	case $v in
	base) row "BASE" "$T/res.base" ;;
	new.default) row "this build, read_interval_ms default" "$T/res.$v" ;;
	*_*) v2=${v#new.}
		row "this build, read_interval_ms ${v2%%_*}, map_capacity ${v2#*_}" "$T/res.$v" ;;
	*) row "this build, read_interval_ms ${v#new.}" "$T/res.$v" ;;
	esac
done
FLOOR_NOTE="6 elements an operation${FLOOR_CAP:+, map sized for $FLOOR_CAP}"
row "floor: $HOSTS processes, transaction + fdatasync ($FLOOR_NOTE)" "$T/res.floor"
row "floor: $HOSTS processes, transaction only ($FLOOR_NOTE)" "$T/res.floor0"
row "floor: $HOSTS stream readers, read + transaction + fdatasync + XACK ($FLOOR_NOTE; CPU: the readers')" "$T/res.sfloor"
row "floor: $HOSTS stream readers, read + transaction + XACK ($FLOOR_NOTE; CPU: the readers')" "$T/res.sfloor0"
echo "| 1 host alone | $(echo "$floor" | awk '{print $1 " | " $2 " | " $3 " | " $4}') | - | $floor_cpu |"
echo
cat <<EOF
| figure | this run | floor / goal |
| --- | --- | --- |
| this build's hosts without a state file (no fdatasync; the first of INTERVALS): p50 / p99 / max (ms), within 100 ms | $(echo "$nostate" | awk '{print $1 " / " $2 " / " $3 ", " $4 "%"}') | porthopd CPU ${nostate_cpu}% |
| porthopd RSS, min / median / max | ${rss_min} / ${rss_med} / ${rss_max} KiB ($entries runtime entries each) | - |
| failover: kill -9 to a host's first entry applied, median / max | $(median <"$T/fo.apply") / $(tail -1 "$T/fo.apply") ms | goal <= 5000 (down-after 1000) |
| failover: kill -9 to a host following the new primary, median / max | $(median <"$T/fo.follow") / $(tail -1 "$T/fo.follow") ms | - |
| failover: the publisher's outage (no primary) | $(awk -v s="$out_s" -v e="$out_e" 'BEGIN {print (s > 0 ? int(e - s) " ms" : "none")}') | - |
EOF
stop_hosts $ALL
