#!/usr/bin/env bash
# Derived ports: a slot change at N keyed services (default 1,000),
# measured side by side in one run, in network namespaces of its own:
#   porthopd  the boundary transaction porthopd applies, its kernel call
#             (netlink batch built, sent, acknowledged; from its log):
#             slot t-2's ports out of the keyed entry's dp0 and t+1's in,
#             and the real ports' pairs (real <-> current port, both
#             ways) moved from slot t's to t+1's in dh0 (6 x N operations)
#   floor     what any design must do: t-2's ports deleted and t+1's
#             added (2 x N operations) in a map of the same type (a hash
#             keyed by protocol . port), one raw libnftnl batch
#             (bench/derivefloor), in a table of its own
#   raw same  porthopd's 6 x N operations, as one raw libnftnl batch:
#             what porthopd's own building and sending costs beyond it
# Rounds alternate: one boundary of porthopd's, then the two raw
# batches (each on its own table).
# Meanwhile a client in another namespace connects again and again to a
# service's port of the moment (porthop follow) while the slots change:
# every failed connect is counted.
#
# usage: bench/derive_slot.sh [BUILD_DIR] [SERVICES] [ROUNDS]
#   SLOT=S: slot length in seconds (default 2)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
N=${2:-1000}
ROUNDS=${3:-15}
SLOT=${SLOT:-2}
HOST=10.78.0.1
bench_ns_up
CL=ph-bench-cl-$$
ns_new "$CL"
ns_link "$NS" "$HOST" "$CL" 10.78.0.2

KEY=$T/bench.key
"$BUILD/porthop" keygen bench -o "$KEY" --use derive --slot-seconds "$SLOT" \
	--tcp "2001-$((2000 + N))" >/dev/null
cfg=$T/derive.json
jq -n --arg key "$KEY" --argjson n "$N" '{
	redis_connection_configuration: {host: "127.0.0.1", port: 6379, db: 0,
		charset: "utf-8", decode_responses: true},
	redis_subscriber_configuration: {subscriber_channel_names: ["bench"]},
	porthopd: {reconcile_interval_seconds: 5, state_directory: ""},
	nftables_service_configuration: {max_port_number: 65535,
		tcp_ports: [range(2001; 2001 + $n)],
		watched_addresses: [{ip: "0.0.0.0/0", derive_key: $key}]}}' >"$cfg"

# The one service that listens: every connection answered and closed.
nsx socat TCP-LISTEN:2001,bind=$HOST,fork,reuseaddr SYSTEM:'echo ok' &
bench_porthopd "$cfg" -v

# The floor's map, filled with its own slots around its own counter.
for tbl in phfloor phsame; do
	nsx nft add table inet $tbl
	for m in dp0 dh0; do
		nsx nft add map inet $tbl $m '{ type inet_proto . inet_service : inet_service; }'
	done
done
fslot=$(($(date +%s) / SLOT))
nsx "$BUILD/derivefloor" phfloor "$KEY" fill "$fslot"
nsx "$BUILD/derivefloor" phsame "$KEY" fill "$fslot"

# The client: connects until told to stop (or 100,000 tries), counting.
connector() {
	local ok=0 bad=0 i p
	for ((i = 0; i < 100000; i++)); do
		[ -e "$T/stop" ] && break
		p=$("$BUILD/porthop" follow $HOST 2001 --key "$KEY")
		if ip netns exec "$CL" socat -u TCP:$HOST:"$p",connect-timeout=2 \
			OPEN:/dev/null 2>/dev/null; then
			ok=$((ok + 1))
		else
			bad=$((bad + 1))
		fi
	done
	echo "$ok $bad" >"$T/connects"
}
connector &
cpid=$!

: >"$T/porthopd.ms"
: >"$T/floor.ms"
: >"$T/same.ms"
for ((r = 1; r <= ROUNDS; r++)); do
	before=$(log_count "slot change:")
	wait_log "slot change:" $((before + 1)) $((SLOT * 5))
	grep "slot change:" "$LOG" | tail -n 1 |
		sed 's/.*: \([0-9]*\) element operations in \([0-9.]*\) ms/\1 \2/' \
		>>"$T/porthopd.ms"
	fslot=$((fslot + 1))
	nsx "$BUILD/derivefloor" phfloor "$KEY" step "$fslot" >>"$T/floor.ms"
	nsx "$BUILD/derivefloor" phsame "$KEY" same "$fslot" >>"$T/same.ms"
done
touch "$T/stop"
wait "$cpid"
read -r ok bad <"$T/connects"

spread() {
	sort -n | awk '{a[NR] = $1} END {printf "%s-%s", a[1], a[NR]}'
}
pm=$(awk '{print $2}' "$T/porthopd.ms" | median)
ps=$(awk '{print $2}' "$T/porthopd.ms" | spread)
ops=$(awk '{print $1}' "$T/porthopd.ms" | median)
fm=$(median <"$T/floor.ms")
fs=$(spread <"$T/floor.ms")
sm=$(median <"$T/same.ms")
ss=$(spread <"$T/same.ms")
echo "# derived ports: slot change at $N keyed services, $ROUNDS rounds, slot $SLOT s"
printf "%-10s %12s %14s %12s\n" variant "median ms" "spread ms" operations
printf "%-10s %12s %14s %12s\n" porthopd "$pm" "$ps" "$ops"
printf "%-10s %12s %14s %12s\n" "raw same" "$sm" "$ss" "$((6 * N))"
printf "%-10s %12s %14s %12s\n" floor "$fm" "$fs" "$((2 * N))"
awk -v a="$pm" -v b="$fm" -v c="$sm" 'BEGIN {printf "porthopd / floor: %.2f; porthopd / raw same: %.2f (goal: porthopd under 5 ms)\n", a / b, a / c}'
echo "connects across $ROUNDS slot changes: $ok made, $bad failed"
