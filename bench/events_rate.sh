#!/usr/bin/env bash
# The event feed's cost to the data plane: TCP connection rate of an
# unwatched client that never probes (good, 10.0.0.4) to the real port on
# the protected host, with one porthopd and the same build in three
# states, side by side in one run:
#
#   on    events and autowatch on (pre_events and its chains in the table)
#   off   the same configuration without them (a reload between)
#   none  the floor: porthop's table deleted (no rules at all on host,
#         connection tracking off); a shuffle defines it anew afterwards
#         (reconciliation is off, so nothing puts it back in between)
#
# Each round runs the three once, in one of the six orders (cycled round
# by round, so each state takes each place equally often), each run after
# a discarded warm-up of half a second (the first connections after a
# change meet cold caches and a porthopd still busy with the change).  The
# ratios are taken within a round: median [95 % CI of their geometric
# mean], and the CI's half-width, the figure the goal's 3 % needs.
# The client runs on CPU 1, the service and porthopd on CPU 0 (as
# bench/connrate.sh, one client).
#
# usage: bench/events_rate.sh [BUILD_DIR] [SECONDS_PER_RUN] [ROUNDS]
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
SECS=${2:-2}
ROUNDS=${3:-24}
require_root "network namespaces"
require_tools jq nft
. "$SRC/scripts/topology.sh"

P=per$$
bench_tmp porthop-evrate
topo_up "$P"
H="ip netns exec ${P}host"
$H taskset -c 0 "$BUILD/phsvc" serve 1 2 3 4 5 &
redis_start "${P}host"
topo_config_native "$T/base.json"
jq '.nftables_service_configuration.max_port_number = 2000
	| .porthopd.reconcile_interval_seconds = 0
	| .porthopd.autowatch = {}' "$T/base.json" >"$T/on.json"
jq '.porthopd.reconcile_interval_seconds = 0' "$T/base.json" >"$T/off.json"
cp "$T/on.json" "$T/cfg.json"
PORTHOPD_WRAP=(taskset -c 0)
porthopd_start "${P}host" -c "$T/cfg.json" -s "$T/control.sock"
ctl() { $H "$BUILD/porthop" "$@" -s "$T/control.sock"; }
wait_for 10 "the service" ip netns exec "${P}good" bash -c "exec 3<>/dev/tcp/10.0.0.2/1"

loaded=on table=1
# state NAME: puts the host in state NAME.
state() {
	if [ "$1" = none ]; then
		[ $table -eq 0 ] || $H nft delete table inet porthop
		table=0
		return
	fi
	if [ $table -eq 0 ]; then
		ctl shuffle >/dev/null
		wait_until 10 $H nft list chain inet porthop pre_nat
		table=1
	fi
	if [ "$loaded" != "$1" ]; then
		cp "$T/$1.json" "$T/cfg.json"
		ctl reload >/dev/null
		loaded=$1
	fi
	# The feed's chain is there exactly when it should be.
	if $H nft list chain inet porthop pre_events >/dev/null 2>&1; then
		[ "$1" = on ] || fail "pre_events present in state $1"
	else
		[ "$1" = off ] || fail "pre_events missing in state $1"
	fi
}
run() { ip netns exec "${P}good" taskset -c 1 "$BUILD/phsvc" rate 10.0.0.2 1 "$1" 2>>"$T/failures"; }

orders=("on off none" "off none on" "none on off" "on none off" "none off on" "off on none")
for r in $(seq 0 $((ROUNDS - 1))); do
	for s in ${orders[$((r % 6))]}; do
		state "$s"
		run 0.5 >/dev/null
		run "$SECS" >>"$T/r.$s"
	done
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

## events: connection rate (${ROUNDS} rounds of ${SECS} s, $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg))

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
porthopd_stop
