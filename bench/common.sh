# Sourced by the benchmark scripts, on top of scripts/lib.sh: SRC is the
# source tree.
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$SRC/scripts/lib.sh"

# bench_build [BUILD_DIR]: BUILD (default $SRC/build), and the note below.
bench_build() {
	BUILD=$(cd "${1:-$SRC/build}" && pwd)
	bench_build_note "$BUILD"
}

# bench_build_note BUILD_DIR: says which build the figures come from;
# they mean something only from an optimised one.
bench_build_note() {
	local t
	t=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$1/CMakeCache.txt" 2>/dev/null || true)
	case $t in
	Release|RelWithDebInfo) echo "# build: $1 ($t)" ;;
	*) echo "# build: $1 (${t:-no build type}): not optimised;" \
		"configure it with -DCMAKE_BUILD_TYPE=RelWithDebInfo" ;;
	esac
}

# bench_tmp NAME: the scratch directory $T (porthopd's log $LOG in it),
# and porthopd's log shown if the benchmark fails; both at exit.
bench_tmp() {
	tmp_dir "$1"
	LOG=$T/porthopd.log
	on_exit bench_report
}

bench_report() {
	[ "$1" -eq 0 ] || { echo "--- porthopd.log"; tail -n 30 "$LOG" 2>/dev/null || true; } >&2
}

# bench_ns_up: bench_tmp, and a network namespace $NS with lo up and a
# redis-server on 127.0.0.1:6379; all go at exit.
bench_ns_up() {
	require_root "network namespaces"
	bench_tmp porthop-bench
	NS=ph-bench-$$
	ns_new "$NS"
	redis_start "$NS"
}

# bench_porthopd CONFIG [ARGS...]: starts $BUILD/porthopd in $NS, its log
# $LOG emptied first, and waits until it has applied its first mapping
# and subscribed; its pid in $pid.
bench_porthopd() {
	local cfg=$1
	shift
	: >"$LOG"
	porthopd_start "$NS" -c "$cfg" -s "$T/control.sock" "$@"
	pid=$PORTHOPD_PID
}

# median: of the numbers on standard input, one a line ("-" if none).
median() {
	sort -n | awk '{a[NR] = $1}
		END {if (NR == 0) print "-"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# trigger_latencies LOG: for every trigger that arrived over Redis (the
# debug line "trigger on channel" of porthopd -v -T), the milliseconds to
# the first "applied" line after it (the kernel has acknowledged the
# shuffle that served it), one a line, in order; triggers that came
# while one was pending are served by the same shuffle.
trigger_latencies() {
	awk '
		BEGIN { n = 0; k = 0 }	# numbers, not "", as subscripts
		# Lines with their time stamp only (-T).
		$1 !~ /^[0-9]+\.[0-9]+$/ { next }
		/trigger on channel/ { t[n++] = $1 }
		/ applied \(redis\)/ {
			for (; k < n; k++)
				printf "%.2f\n", ($1 - t[k]) * 1000
		}' "$1"
}

# percentile P: the P-th percentile (nearest rank) of the numbers on
# standard input, one a line.
percentile() {
	sort -n | awk -v p="$1" '{a[NR] = $1}
		END {i = int(NR * p / 100 + 0.999); print a[(i < 1 ? 1 : i > NR ? NR : i)]}'
}
