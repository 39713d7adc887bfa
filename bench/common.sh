# Sourced by the benchmark scripts: SRC is the source tree.
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

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

# bench_ns_up: a scratch directory $T and a network namespace $NS with lo
# up and a redis-server on 127.0.0.1:6379; both go at exit.
bench_ns_up() {
	[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces)"; exit 77; }
	T=$(mktemp -d /tmp/porthop-bench.XXXXXX)
	NS=ph-bench-$$
	trap bench_ns_down EXIT
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	nsx redis-server --port 6379 --bind 127.0.0.1 --save '' --daemonize yes \
		--dir "$T" --logfile "$T/redis.log"
	until nsx redis-cli ping >/dev/null 2>&1; do sleep 0.05; done
}

bench_ns_down() {
	local pid
	for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$T"
}

nsx() { ip netns exec "$NS" "$@"; }

# bench_porthopd CONFIG [ARGS...]: starts $BUILD/porthopd in $NS, its log
# in $T/porthopd.log (emptied first), and waits until it has applied its
# first mapping and subscribed; its pid in $pid.
bench_porthopd() {
	local cfg=$1
	shift
	: >"$T/porthopd.log"
	# Not through nsx: $! must be porthopd itself.
	ip netns exec "$NS" "$BUILD/porthopd" -c "$cfg" -s "$T/control.sock" "$@" >>"$T/porthopd.log" 2>&1 &
	pid=$!
	until grep -q "subscribed" "$T/porthopd.log"; do
		kill -0 $pid 2>/dev/null || { cat "$T/porthopd.log" >&2; return 1; }
		sleep 0.05
	done
}

# median: of the numbers on standard input, one a line ("-" if none).
median() {
	sort -n | awk '{a[NR] = $1}
		END {if (NR == 0) print "-"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
