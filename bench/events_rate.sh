#!/usr/bin/env bash
# The event feed's cost to the data plane: TCP connection rate of an
# unwatched client that never probes to the real port of a protected
# host, the same build in three states, side by side in one run:
#
#   on    events and autowatch on (the feed's chains and verdict map in the table)
#   off   the same configuration without them (a reload between)
#   none  the floor: porthop's table deleted (no rules at all on the host,
#         connection tracking off); a shuffle defines it anew afterwards
#         (reconciliation is off, so nothing puts it back in between)
#
# Three protected hosts on the demo's bridge (host 10.0.0.2, hostb .12,
# hostc .13), each with the service and a porthopd of its own, and a
# client for each (good .4, goodb .14, goodc .15).  Each round gives the
# three states to the three hosts in one of the six ways (cycled round by
# round: each state on each host equally often, which takes out what
# differs between the hosts).  With TOGETHER=1 (the default), the three
# clients run at the same moment: whatever else the machine does (a CI
# run on these 2 cores) falls on the three alike, where runs one after
# the other each meet their own share of it; each gets about a third of
# the cores, so the rates are a third of a run alone, and the ratios are
# what counts.  TOGETHER=0 runs them one after the other, in the order
# rotated.  Every run follows a discarded warm-up of half a second (the
# first connections after a change meet cold caches and a porthopd still
# busy with it).  The ratios are taken within a round: median [95 % CI of
# their geometric mean], and the CI's half-width, what the goal's 3 %
# needs.
#
# UNTRACK (default: the configuration's "auto", which untracks unwatched
# clients here) sets untrack_unwatched in all three: UNTRACK=false
# measures the tracked path (the client's first packet through pre_nat's
# verdict map) instead of the untracked one (raw_pre's rule).
#
# usage: bench/events_rate.sh [BUILD_DIR] [SECONDS_PER_RUN] [ROUNDS]
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
SECS=${2:-2}
ROUNDS=${3:-24}
TOGETHER=${TOGETHER:-1}
require_root "network namespaces"
require_tools jq nft
. "$SRC/scripts/topology.sh"

P=per$$
bench_tmp porthop-evrate
topo_up "$P"
topo_add_host "$P" hostb 10.0.0.12 fd00:70:68::12
topo_add_host "$P" hostc 10.0.0.13 fd00:70:68::13
topo_add_host "$P" goodb 10.0.0.14 fd00:70:68::14
topo_add_host "$P" goodc 10.0.0.15 fd00:70:68::15
HOSTS=(host hostb hostc)
ADDRS=(10.0.0.2 10.0.0.12 10.0.0.13)
CLIENTS=(good goodb goodc)
topo_config_native "$T/base.json"
if [ -n "${UNTRACK:-}" ]; then
	jq --argjson u "$UNTRACK" '.nftables_service_configuration.untrack_unwatched = $u' \
		"$T/base.json" >"$T/base.u.json"
	mv "$T/base.u.json" "$T/base.json"
fi
declare -a pids loaded table
for i in 0 1 2; do
	h=${HOSTS[$i]} port=$((6379 + i))
	ip netns exec "${P}$h" "$BUILD/phsvc" serve 1 2 3 4 5 &
	redis_start "${P}$h" $port
	jq --argjson port $port '.redis_connection_configuration.port = $port
		| .nftables_service_configuration.max_port_number = 2000
		| .porthopd.reconcile_interval_seconds = 0
		| .porthopd.autowatch = {}' "$T/base.json" >"$T/on.$i.json"
	jq --argjson port $port '.redis_connection_configuration.port = $port
		| .porthopd.reconcile_interval_seconds = 0' "$T/base.json" >"$T/off.$i.json"
	cp "$T/on.$i.json" "$T/cfg.$i.json"
	# shellcheck disable=SC2034 # read by porthopd_start (scripts/lib.sh)
	LOG=$T/porthopd.$i.log
	porthopd_start "${P}$h" -c "$T/cfg.$i.json" -s "$T/control.$i.sock"
	pids[i]=$PORTHOPD_PID loaded[i]=on table[i]=1
	wait_for 10 "the service on ${ADDRS[$i]}" ip netns exec "${P}${CLIENTS[$i]}" \
		bash -c "exec 3<>/dev/tcp/${ADDRS[$i]}/1"
done
ctl() { local i=$1; shift; ip netns exec "${P}${HOSTS[$i]}" "$BUILD/porthop" "$@" -s "$T/control.$i.sock"; }

# state I NAME: puts host I in state NAME.
state() {
	local i=$1 H="ip netns exec ${P}${HOSTS[$1]}"
	if [ "$2" = none ]; then
		[ "${table[$i]}" -eq 0 ] || $H nft delete table inet porthop
		table[i]=0
		return
	fi
	if [ "${table[$i]}" -eq 0 ]; then
		ctl "$i" shuffle >/dev/null
		# shellcheck disable=SC2086 # $H is a command prefix
		wait_until 10 $H nft list chain inet porthop pre_nat
		table[i]=1
	fi
	if [ "${loaded[$i]}" != "$2" ]; then
		cp "$T/$2.$i.json" "$T/cfg.$i.json"
		ctl "$i" reload >/dev/null
		loaded[i]=$2
	fi
	# The feed's chain is there exactly when it should be.
	if $H nft list chain inet porthop ev_new >/dev/null 2>&1; then
		[ "$2" = on ] || fail "ev_new present on ${HOSTS[$i]} in state $2"
	else
		[ "$2" = off ] || fail "ev_new missing on ${HOSTS[$i]} in state $2"
	fi
}
# run I SECONDS: host I's client, connections per second.
run() {
	ip netns exec "${P}${CLIENTS[$1]}" "$BUILD/phsvc" rate "${ADDRS[$1]}" 1 "$2" 2>>"$T/failures"
}

orders=("on off none" "off none on" "none on off" "on none off" "none off on" "off on none")
for r in $(seq 0 $((ROUNDS - 1))); do
	# shellcheck disable=SC2206
	st=(${orders[$((r % 6))]})
	for i in 0 1 2; do state "$i" "${st[$i]}"; done
	if [ "$TOGETHER" = 1 ]; then
		# (Only these runs are waited for: the services and porthopds
		# are children too.)
		w=()
		for i in 0 1 2; do run "$i" 0.5 >/dev/null & w+=($!); done
		wait "${w[@]}"
		w=()
		for i in 0 1 2; do run "$i" "$SECS" >"$T/now.$i" & w+=($!); done
		wait "${w[@]}"
		for i in 0 1 2; do cat "$T/now.$i" >>"$T/r.${st[$i]}"; done
	else
		for k in 0 1 2; do
			i=$(( (k + r) % 3 ))
			run "$i" 0.5 >/dev/null
			run "$i" "$SECS" >>"$T/r.${st[$i]}"
		done
	fi
done

# ratio A B: per-round A/B as "median [lo-hi] (+-h %)", the interval the
# 95 % CI of the geometric mean, h its half-width (the larger side).
ratio() {
	paste "$T/r.$1" "$T/r.$2" | awk '$2 > 0 {print $1 / $2}' | sort -g | awk '
		{v[NR] = $1; l = log($1); s += l; q += l * l}
		END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		     mu = s / NR; sd = NR > 1 ? sqrt((q - NR * mu * mu) / (NR - 1)) : 0
		     e = 1.96 * sd / sqrt(NR)
		     printf "%.3fx [%.3f-%.3f] (+-%.1f %%)", m, exp(mu - e), exp(mu + e), 100 * (exp(e) - 1)}'
}
spread() {	# NAME: the runs' coefficient of variation, in %
	awk '{s += $1; q += $1 * $1} END {m = s / NR; printf "%.1f", 100 * sqrt((q - NR * m * m) / (NR - 1)) / m}' "$T/r.$1"
}

cat <<EOF

## events: connection rate ($( [ "$TOGETHER" = 1 ] && echo "the three at once" || echo "one after the other"), untrack_unwatched ${UNTRACK:-auto}, ${ROUNDS} rounds of ${SECS} s, $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg))

| series | median conn/s | spread of runs (CV) |
| --- | --- | --- |
| on (events + autowatch) | $(median <"$T/r.on") | $(spread on) % |
| off (same build, no events) | $(median <"$T/r.off") | $(spread off) % |
| none (no porthop rules at all) | $(median <"$T/r.none") | $(spread none) % |

| ratio (per round) | median [95 % CI] | goal |
| --- | --- | --- |
| on / off | $(ratio on off) | >= 0.97x |
| on / none | $(ratio on none) | |
| off / none | $(ratio off none) | |
EOF
if [ -s "$T/failures" ]; then
	echo "# failed connections:"; sed 's/^/#   /' "$T/failures"
fi
for i in 0 1 2; do PORTHOPD_PID=${pids[$i]}; porthopd_stop; done
