#!/usr/bin/env bash
# TCP connection rate through porthop, measured side by side in one run on
# the demo's namespace topology plus two control hosts on the same bridge:
#
#   host  10.0.0.2  porthopd (native, then template mode) and the service
#   ctl   10.0.0.5  the same service, no rules at all
#   ctk   10.0.0.6  the same service behind a stateful firewall with a NAT
#                   chain (conntrack on, as on any host running Docker,
#                   firewalld or a "ct state established accept" rule)
#
# The watched client (bad, 10.0.0.3) connects through its moved port on
# host; the unwatched client (good, 10.0.0.4) to the real port.  Both also
# connect to ctl and ctk.  Runs are interleaved (one short run of every
# series per round, the order rotated each round) so that the machine's
# drift falls on every series alike, and each ratio is taken within one
# round; the table gives the median ratio over the rounds and the 95 %
# confidence interval of their geometric mean.
# With one client at a time, the client runs on CPU 1, services and
# porthopd on CPU 0; that measures a round trip, and leaves the cores idle
# part of the time.  Four clients side by side keep both cores busy: the
# rate the host sustains, which is where a per-connection cost shows.
#
# usage: bench/connrate.sh [BUILD_DIR] [SECONDS_PER_RUN] [ROUNDS]
#   TEMPLATE_MAX=N: largest size run in template mode (default 10000)
#   SIZES="10 10000 100000": the sizes
#   PARS="1 4": the numbers of clients side by side
#   MODES="native template": the modes; "none" adds a run with no
#   porthopd and no rules on host, both clients to the real port: how host
#   itself compares with the control hosts (a cost of nothing looks so);
#   "cand-NAME" loads bench/candidates/NAME.nft instead of running
#   porthopd: a data plane weighed before it is built (see those files),
#   with the same pairs in a map swap4 (port 1 of the watched client moved
#   to 40001); "self" runs native mode against the same host with
#   porthop's table removed: each round, both clients with the table
#   (restored by a shuffle, which defines it anew) and without it (no
#   rules at all on host, connection tracking off), the order alternated
#   round by round.  That takes out what differs between host and the
#   control hosts (their place on the bridge, the cache): its "no rules"
#   columns are host's own, and the conntrack columns stay empty.
#   "native" runs with untrack_unwatched "auto", the default (host has no
#   other table, so unwatched clients are untracked); "native-untracked"
#   with it true, "native-tracked" with it false (every client tracked,
#   what "auto" does beside another user of conntrack).
#   TOGETHER=1: the three hosts measured at the same time rather than one
#   after the other (see rounds_together); not with "self".
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
SECS=${2:-2}
ROUNDS=${3:-9}
TEMPLATE_MAX=${TEMPLATE_MAX:-10000}
SIZES=${SIZES:-10 10000 100000}
PARS=${PARS:-1 4}
MODES=${MODES:-native template}
require_root "network namespaces"
. "$SRC/scripts/topology.sh"

P=phr$$
bench_tmp porthop-rate
topo_up "$P"
topo_add_host "$P" ctl 10.0.0.5 fd00:70:68::5
topo_add_host "$P" ctk 10.0.0.6 fd00:70:68::6
ip netns exec "${P}ctk" nft -f - <<'NFT'
table inet fw {
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		tcp dport 1 accept
	}
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
	}
}
NFT
CPU_SVC=0 CPU_CLI=1
[ "$(nproc)" -ge 2 ] || CPU_CLI=0
for h in host ctl ctk; do
	ip netns exec "${P}$h" taskset -c $CPU_SVC "$BUILD/phsvc" serve 1 &
done
H="ip netns exec ${P}host"
redis_start "${P}host"
for a in 10.0.0.2 10.0.0.5 10.0.0.6; do
	wait_for 10 "the service on $a" ip netns exec "${P}good" bash -c "exec 3<>/dev/tcp/$a/1"
done

# one FROM ADDRESS PORT: connections per second of one run: one client
# (PAR=1, pinned) or PAR clients side by side (their sum; unpinned, so
# that they keep both cores busy: the host's capacity, not a round trip).
one() {
	local k
	if [ "$PAR" -eq 1 ]; then
		ip netns exec "${P}$1" taskset -c $CPU_CLI "$BUILD/phsvc" rate "$2" "$3" "$SECS" 2>>"$T/failures" || true
		return
	fi
	for k in $(seq "$PAR"); do
		# Side by side with other series (TOGETHER=1), the clients are
		# spread over the cores evenly, pinned, so that each series
		# gets the same share of each core.
		if [ "${TOGETHER:-0}" = 1 ]; then
			ip netns exec "${P}$1" taskset -c $((k % $(nproc))) "$BUILD/phsvc" rate "$2" "$3" "$SECS" 2>>"$T/failures" &
		else
			ip netns exec "${P}$1" "$BUILD/phsvc" rate "$2" "$3" "$SECS" 2>>"$T/failures" &
		fi
	done | awk '{s += $1} END {print s}'
}

# rounds SERIES...: each SERIES is "name from address port"; runs ROUNDS
# rounds and leaves the rates in $T/r.<name>, one line per round.  With
# TOGETHER=1, the series of one client run at the same time instead, the
# three hosts side by side (see rounds_together).
rounds() {
	local n=$# r i k
	local -a s=("$@")
	if [ "${TOGETHER:-0}" = 1 ]; then
		rounds_together "$@"
		return
	fi
	for r in $(seq 0 $((ROUNDS - 1))); do
		for i in $(seq 0 $((n - 1))); do
			k=$(( (i + r) % n ))
			# shellcheck disable=SC2086
			set -- ${s[$k]}
			one "$2" "$3" "$4" >>"$T/r.$1"
		done
	done
}

# rounds_together SERIES...: as rounds, but the series of one client
# (w, wc, wk; then u, uc, uk) run at the same time, each client process
# taking its share of the same cores at the same moments: whatever else
# the machine does during a run falls on the three alike, where runs one
# after the other each meet their own share of it.  Each series then gets
# about a third of the cores, so its rate is a third of a run alone; the
# ratios are what counts.  The order of the two clients alternates.
rounds_together() {
	local r g
	local -a s=("$@")
	for r in $(seq 0 $((ROUNDS - 1))); do
		for g in $((r % 2)) $(((r + 1) % 2)); do
			together "${s[$g]}" "${s[$((g + 2))]}" "${s[$((g + 4))]}"
		done
	done
}

# together SERIES...: runs the series at once, each into $T/r.<name>.
together() {
	local x
	local -a all=("$@") pids=()
	for x in "${all[@]}"; do
		# shellcheck disable=SC2086
		set -- $x
		one "$2" "$3" "$4" >"$T/now.$1" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for x in "${all[@]}"; do
		cat "$T/now.${x%% *}" >>"$T/r.${x%% *}"
	done
}

# rounds_self: the rounds of "self" mode: each round the series with
# porthop's table (w, u) and without it (w0, u0), the order of the two
# halves alternated (so the table goes and comes back once a round) and
# the order within each rotated.  porthopd starts with its table on.
rounds_self() {
	local r half on=1
	for r in $(seq 0 $((ROUNDS - 1))); do
		for half in $((r % 2)) $(((r + 1) % 2)); do
			if [ "$half" -eq 0 ]; then
				[ $on -eq 1 ] || table_on
				on=1
				if [ $((r % 4)) -lt 2 ]; then
					one bad 10.0.0.2 "$moved" >>"$T/r.w"; one good 10.0.0.2 1 >>"$T/r.u"
				else
					one good 10.0.0.2 1 >>"$T/r.u"; one bad 10.0.0.2 "$moved" >>"$T/r.w"
				fi
			else
				[ $on -eq 0 ] || $H nft delete table inet porthop
				on=0
				if [ $((r % 4)) -lt 2 ]; then
					one bad 10.0.0.2 1 >>"$T/r.w0"; one good 10.0.0.2 1 >>"$T/r.u0"
				else
					one good 10.0.0.2 1 >>"$T/r.u0"; one bad 10.0.0.2 1 >>"$T/r.w0"
				fi
			fi
		done
	done
}

# table_on: porthop's table back (a shuffle finding it gone defines it
# anew), and $moved, the watched client's port for service 1.
table_on() {
	$H "$BUILD/porthop" shuffle -s "$T/control.sock" >/dev/null
	moved=$($H "$BUILD/porthop" mapping 10.0.0.3 -s "$T/control.sock" | awk '$1 == "tcp" && $2 == 1 {print $4}')
	[ -n "$moved" ] || { echo "no redirect for port 1" >&2; cat "$T/porthopd.log" >&2; exit 1; }
}

# ratio A B: the per-round ratios A/B as "median [lo-hi]": [lo-hi] is
# the 95 % confidence interval of their geometric mean (mean of the logs
# +- 1.96 standard errors), the honest bound of what one run can tell
# apart: a cost is measurable when 1.00 lies outside it.
ratio() {
	paste "$T/r.$1" "$T/r.$2" | awk '$2 > 0 {print $1 / $2}' | sort -g | awk '
		{v[NR] = $1; l = log($1); s += l; q += l * l}
		END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		     mu = s / NR; sd = NR > 1 ? sqrt((q - NR * mu * mu) / (NR - 1)) : 0
		     e = 1.96 * sd / sqrt(NR)
		     printf "%.2fx [%.2f-%.2f]", m, exp(mu - e), exp(mu + e)}'
}

# rate NAME: the median rate of a series, whole.
rate() {
	printf "%.0f" "$(median <"$T/r.$1")"
}

# shape PAIRS: np ports on each of na addresses, the watched client
# 10.0.0.3 first, then fillers; filler I: the I-th filler address.
shape() {
	if [ "$1" -lt 1000 ]; then np=$1; na=1; else np=1000; na=$(($1 / 1000)); fi
}
filler() { echo "10.200.$(($1 / 250)).$(($1 % 250 + 1))"; }

# config MODE PAIRS: 10.0.0.3 (the bad client) plus filler addresses.
config() {
	local mode=$1 pairs=$2 np na paths="" i
	shape "$pairs"
	[ "$mode" = template ] && paths="\"nft_startup_commands_path\": \"$SRC/examples/nft_startup_commands.json\", \"nft_address_rules_path\": \"$SRC/examples/nft_address_rules.json\","
	[ "$mode" = native-untracked ] && paths="\"untrack_unwatched\": true,"
	[ "$mode" = native-tracked ] && paths="\"untrack_unwatched\": false,"
	echo "{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", \"decode_responses\": true},"
	echo " \"redis_subscriber_configuration\": {\"subscriber_channel_names\": [\"bench\"]},"
	echo " \"porthopd\": {\"reconcile_interval_seconds\": 0, \"state_directory\": \"\"},"
	echo " \"nftables_service_configuration\": {$paths \"max_port_number\": 65535,"
	echo "  \"tcp_ports\": [$(seq -s, 1 "$np")], \"watched_addresses\": [{\"ip\": \"10.0.0.3\"}"
	for i in $(seq 1 $((na - 1))); do echo ", {\"ip\": \"$(filler "$i")\"}"; done
	echo "]}}"
}

# candidate NAME PAIRS: bench/candidates/NAME.nft with the pairs porthopd
# would hold for the same configuration, both directions of each as its
# maps hold them: port 1 of the watched client moved to 40001, every other
# port p to p + 20000.
candidate() {
	local name=$1 pairs=$2 np na i j a
	shape "$pairs"
	printf 'table inet candidate {\n'
	printf '\tmap swap4 { type ipv4_addr . inet_proto . inet_service : inet_service; }\n'
	printf '\tset keys4 { type ipv4_addr . inet_proto . inet_service; }\n}\n'
	grep -v '^#' "$SRC/bench/candidates/$name.nft"
	printf 'add element inet candidate keys4 { 10.0.0.3 . tcp . 1, 10.0.0.3 . tcp . 40001 }\n'
	printf 'add element inet candidate swap4 { 10.0.0.3 . tcp . 1 : 40001, 10.0.0.3 . tcp . 40001 : 1'
	for i in $(seq 0 $((na - 1))); do
		if [ "$i" -eq 0 ]; then a=10.0.0.3; else a=$(filler "$i"); fi
		for j in $(seq $((i == 0 ? 2 : 1)) "$np"); do
			printf ', %s . tcp . %d : %d, %s . tcp . %d : %d' \
				"$a" $j $((j + 20000)) "$a" $((j + 20000)) $j
		done
	done
	printf ' }\n'
}

# measure MODE PAIRS: start porthopd, run the rounds, stop it.  Prints
# "watched|unwatched|no-rules rate|watched/ctl|unwatched/ctl|watched/ctk|
# unwatched/ctk".
measure() {
	local mode=$1 pairs=$2 pid moved
	config "${mode/self/native}" "$pairs" >"$T/cfg.json"
	: >"$LOG"
	if [ "$mode" = none ]; then
		pid="" moved=1
	elif [ "${mode#cand-}" != "$mode" ]; then
		pid="" moved=40001
		candidate "${mode#cand-}" "$pairs" >"$T/candidate.nft"
		$H nft -f "$T/candidate.nft"
	else
		PORTHOPD_WRAP=(taskset -c $CPU_SVC)
		porthopd_start "${P}host" -c "$T/cfg.json" -s "$T/control.sock"
		pid=$PORTHOPD_PID
		moved=$(topo_redirects "$P" 10.0.0.3 | awk '$1 == 1 {print $2}')
		[ -n "$moved" ] || { echo "no redirect for port 1" >&2; cat "$LOG" >&2; exit 1; }
	fi
	for PAR in $PARS; do
		rm -f "$T"/r.*
		if [ "$mode" = self ]; then
			rounds_self
			echo "$PAR|$(rate w)|$(rate u)|$(rate w0)|$(ratio w w0)|$(ratio u u0)|-|-"
			continue
		fi
		rounds "w bad 10.0.0.2 $moved" "u good 10.0.0.2 1" \
		       "wc bad 10.0.0.5 1" "uc good 10.0.0.5 1" \
		       "wk bad 10.0.0.6 1" "uk good 10.0.0.6 1"
		echo "$PAR|$(rate w)|$(rate u)|$(rate wc)|$(ratio w wc)|$(ratio u uc)|$(ratio w wk)|$(ratio u uk)"
	done
	[ -z "$pid" ] || porthopd_stop || true
	$H nft flush ruleset
}

echo "# $(nproc) CPUs, $(uname -r), $ROUNDS rounds of ${SECS} s per series, interleaved;"
echo "# clients: 1 (one connection at a time) or 4 side by side (both cores busy)"
printf "%-7s %-16s %-7s %9s %9s %9s  %-19s %-19s %-19s %-19s\n" pairs mode clients watched unwatched "no rules" \
	"watched/no rules" "unwatched/no rules" "watched/conntrack" "unwatched/conntrack"
for pairs in $SIZES; do
	for mode in $MODES; do
		[ $mode = template ] && [ "$pairs" -gt "$TEMPLATE_MAX" ] && continue
		[ $mode = none ] && [ "$pairs" != "${SIZES%% *}" ] && continue
		while IFS='|' read -r par w u base a b c d; do
			printf "%-7s %-16s %-7s %7s/s %7s/s %7s/s  %-19s %-19s %-19s %-19s\n" \
				"$pairs" $mode "$par" "$w" "$u" "$base" "$a" "$b" "$c" "$d"
		done < <(measure $mode "$pairs")
	done
done
if [ -s "$T/failures" ]; then
	echo "# failed connections:"; sed 's/^/#   /' "$T/failures"
fi
