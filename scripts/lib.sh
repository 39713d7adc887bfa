# porthop's shell library: what the integration and acceptance tests, the
# demo and the benchmarks share.  Sourced, never run; it sets no shell
# options (each script chooses its own) and installs the EXIT trap that
# runs the clean-up registered with on_exit.
#
#   fail MESSAGE, pass MESSAGE         a verdict (fail exits 1)
#   require_root WHY, require_tools T  or skip (77), or fail
#   poll SECS CMD...                   run CMD until it succeeds, or time out
#   wait_for SECS WHAT CMD...          the same, or fail
#   wait_until SECS CMD...             the same, CMD naming itself
#   on_exit FUNCTION                   run FUNCTION RC at exit, whatever
#                                      happens (last registered first)
#   tmp_dir NAME                       T: a scratch directory, removed
#   ns_new NAME, nsx CMD...            a network namespace, removed with
#                                      every process in it; CMD in $NS
#   redis_start NS [PORT], redis_stop  a redis-server in a namespace
#   log_count PATTERN, wait_log PATTERN COUNT [SECS]
#                                      lines of $LOG (porthopd's log)
#   porthopd_spawn NS ARGS..., porthopd_start NS ARGS..., porthopd_stop
#                                      $BUILD/porthopd in a namespace
#
# Everything it starts stays inside the namespaces it made: traffic only
# on their links and their 127.0.0.1.

# Once is enough: a second time would forget what is registered for the
# exit.
[ -z "${PORTHOP_LIB:-}" ] || return 0
PORTHOP_LIB=1

LIB_EXIT_HOOKS=()
LIB_NAMESPACES=()
# A wrapper for porthopd (valgrind, taskset, prlimit...), empty by default.
PORTHOPD_WRAP=()

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

pass() {
	echo "ok: $*"
}

# require_root WHY: exit 77 (skipped) unless root.
require_root() {
	[ "$(id -u)" -eq 0 ] && return
	echo "skipped: needs root ($1)"
	exit 77
}

# require_tools TOOL...: fail unless every TOOL is on PATH.
require_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/deps.sh installs it)"
	done
}

# poll SECONDS COMMAND...: runs COMMAND (a command or a shell function)
# every WAIT_POLL seconds (0.05) until it succeeds (returns 0), SECONDS
# pass (1) or, if WAIT_PID is set, that process ends (2).
poll() {
	# Microseconds on the wall clock, read without a process.
	local deadline=$(( ${EPOCHREALTIME/[.,]/} + $1 * 1000000 ))
	shift
	until "$@" >/dev/null 2>&1; do
		if [ -n "${WAIT_PID:-}" ] && ! kill -0 "$WAIT_PID" 2>/dev/null; then
			return 2
		fi
		[ "${EPOCHREALTIME/[.,]/}" -lt "$deadline" ] || return 1
		sleep "${WAIT_POLL:-0.05}"
	done
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll, and fail if COMMAND never
# succeeded.
wait_for() {
	local secs=$1 what=$2 r=0
	shift 2
	# Under valgrind porthopd runs some ten times slower: the bound is a
	# guard against hanging, not a measure, so it stretches with it.
	[ "${PORTHOP_VALGRIND:-0}" = 1 ] && secs=$((secs * 5))
	poll "$secs" "$@" || r=$?
	case $r in
	0) ;;
	2) fail "process $WAIT_PID ended while waiting for $what" ;;
	*) fail "timed out after ${secs}s waiting for $what" ;;
	esac
}

# wait_until SECONDS COMMAND...: wait_for, described by the command.
wait_until() {
	local secs=$1
	shift
	wait_for "$secs" "$*" "$@"
}

on_exit() {
	LIB_EXIT_HOOKS+=("$1")
}

# The EXIT trap.  Without -e and -u: a failing step (a subshell's status
# such as `(exit $rc)`, a variable not set yet) must not end the clean-up
# early and leave namespaces and processes behind.  A hook must not exit.
lib_exit() {
	local rc=$? i
	set +eu
	for ((i = ${#LIB_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
		"${LIB_EXIT_HOOKS[i]}" "$rc"
	done
	exit "$rc"
}
trap lib_exit EXIT
trap 'exit 130' INT TERM

# tmp_dir NAME: T, a new directory /tmp/NAME.XXXXXX, removed at exit.
tmp_dir() {
	T=$(mktemp -d "/tmp/$1.XXXXXX")
	on_exit lib_rm_tmp
}

lib_rm_tmp() {
	rm -rf "$T"
}

# ns_new NAME: a network namespace with lo up, removed at exit with every
# process in it.
ns_new() {
	ip netns add "$1"
	[ ${#LIB_NAMESPACES[@]} -gt 0 ] || on_exit ns_teardown
	LIB_NAMESPACES+=("$1")
	ip -n "$1" link set lo up
}

# lib_ns_signal SIGNAL: sends SIGNAL to every process in our namespaces;
# true if there was any.
lib_ns_signal() {
	local ns pid any=1
	for ns in "${LIB_NAMESPACES[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill "-$1" "$pid" 2>/dev/null || true
			any=0
		done
	done
	return $any
}

# ns_teardown: every namespace ns_new made, gone.  Processes outlive a
# deleted namespace: they are asked to end, given 2 s, then killed.
ns_teardown() {
	local ns
	if lib_ns_signal TERM; then
		WAIT_PID='' poll 2 lib_ns_empty || true
		lib_ns_signal KILL || true
	fi
	for ns in "${LIB_NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	LIB_NAMESPACES=()
}

lib_ns_empty() {
	! lib_ns_signal 0
}

# nsx COMMAND...: COMMAND inside $NS.
nsx() {
	ip netns exec "$NS" "$@"
}

# redis_start NS [PORT]: a redis-server on 127.0.0.1:PORT (6379) in NS, its
# files in $T, without persistence; waits until it answers.
redis_start() {
	local ns=$1 port=${2:-6379}
	ip netns exec "$ns" redis-server --port "$port" --bind 127.0.0.1 --save '' \
		--appendonly no --daemonize yes --dir "$T" \
		--pidfile "$T/redis-$port.pid" --logfile "$T/redis.log"
	wait_for 10 "redis-server on port $port" ip netns exec "$ns" redis-cli -p "$port" ping
}

# redis_stop NS [PORT]: shuts it down; waits until it no longer answers.
redis_stop() {
	local ns=$1 port=${2:-6379}
	ip netns exec "$ns" redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
	wait_for 10 "redis-server on port $port to stop" lib_redis_gone "$ns" "$port"
}

lib_redis_gone() {
	! ip netns exec "$1" redis-cli -p "$2" ping
}

# log_count PATTERN: lines of $LOG that match PATTERN (grep), 0 if none.
log_count() {
	local n
	n=$(grep -c -- "$1" "$LOG" 2>/dev/null) || true
	echo "${n:-0}"
}

# log_has PATTERN COUNT: whether PATTERN is in $LOG COUNT times or more.
log_has() {
	[ "$(log_count "$1")" -ge "$2" ]
}

# wait_log PATTERN COUNT [SECONDS]: until PATTERN is in $LOG COUNT times
# (20 s at most).
wait_log() {
	wait_for "${3:-20}" "\"$1\" x$2 in the log" log_has "$1" "$2"
}

# porthopd_spawn NS ARGS...: $BUILD/porthopd ARGS in NS under
# PORTHOPD_WRAP, its output appended to $LOG; its pid in PORTHOPD_PID.
porthopd_spawn() {
	local ns=$1
	shift
	# Not through nsx or a subshell: $! must be porthopd itself.
	ip netns exec "$ns" "${PORTHOPD_WRAP[@]}" "$BUILD/porthopd" "$@" >>"$LOG" 2>&1 &
	PORTHOPD_PID=$!
}

# porthopd_start NS ARGS...: porthopd_spawn, then waits until it has
# applied its first mapping and subscribed (a minute at most; its end
# fails the wait at once).
porthopd_start() {
	porthopd_spawn "$@"
	WAIT_PID=$PORTHOPD_PID wait_log "subscribed" 1 60
}

# porthopd_stop: SIGTERM to PORTHOPD_PID; returns its exit status.
porthopd_stop() {
	local rc=0
	kill -TERM "$PORTHOPD_PID"
	wait "$PORTHOPD_PID" || rc=$?
	return $rc
}

# ns_link NS_A ADDR_A NS_B ADDR_B: a veth link between two namespaces of
# the test (each made by ns_new), ADDR_A/24 on NS_A's end and ADDR_B/24 on
# NS_B's, both up.  It goes with the namespaces.
ns_link() {
	local a=ph$RANDOM b=ph$RANDOM
	ip link add "$a" netns "$1" type veth peer name "$b" netns "$3"
	ip -n "$1" addr add "$2/24" dev "$a"
	ip -n "$3" addr add "$4/24" dev "$b"
	ip -n "$1" link set "$a" up
	ip -n "$3" link set "$b" up
}
