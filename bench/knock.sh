#!/usr/bin/env bash
# Knock to real port reachable (docs/knock.md), at 100,000 watched
# entries, on veth links between network namespaces (scripts/topology.sh):
# from the moment a client sends its knock to its first successful
# connect to the real port (bench/knockbench.c: the knock, then connects
# one after the other, each refused at once until porthopd has let the
# client in).  Beside it, measured in the same run, round by round, the
# floor: one element with a timeout added to a set in one netlink
# transaction (what any design that lets an address in through nftables
# pays) plus one connect to the real port once in (what the client pays
# anyway: timed by the same process right after, while the client is
# in).  Between rounds the client's trust (1 s) runs out by itself,
# so that every round starts locked out.  (Deleting its element with nft
# instead would be someone else's commit: porthopd's reconciliation would
# check its 100,000 pairs after each, about 0.3 s during which no knock
# is read; that cost is reconciliation's, measured by
# bench/reconcile_check.sh.)
#
# usage: bench/knock.sh [BUILD_DIR]     ROUNDS=N (200), ENTRIES=N (100000),
#   NICE=N: porthopd at that nice value (e.g. -10: is the rest of the
#   time porthopd waiting for a CPU?)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
ROUNDS=${ROUNDS:-200}
ENTRIES=${ENTRIES:-100000}
require_root "network namespaces"
require_tools jq nft
bench_tmp porthop-bench-knock
. "$SRC/scripts/topology.sh"
P=phkb$$
topo_up "$P"
H="${P}host"
C="${P}bad"
HOST=${TOPO_ADDR[host]}
ip netns exec "$H" "$BUILD/phsvc" serve 22 &

mkdir -m 700 "$T/clients"
"$BUILD/porthop" keygen bench -o "$T/bench.key" >/dev/null
cp "$T/bench.key" "$T/clients/bench.key"
# ENTRIES watched entries: the client's network and ENTRIES - 1 single
# addresses in 172.16.0.0/12.
awk -v n="$ENTRIES" 'BEGIN {
	printf "[{\"ip\": \"10.0.0.0/24\"}"
	for (i = 1; i < n; i++)
		printf ",{\"ip\": \"172.%d.%d.%d\"}", 16 + int(i / 65536), int(i / 256) % 256, i % 256
	print "]" }' >"$T/watched.json"
jq -n --slurpfile w "$T/watched.json" --arg dir "$T/clients" '{
	redis_connection_configuration: {host: "127.0.0.1", port: 6379, db: 0,
		charset: "utf-8", decode_responses: true},
	redis_subscriber_configuration: {subscriber_channel_names: ["bench"]},
	nftables_service_configuration: {max_port_number: 65535,
		tcp_ports: [22], watched_addresses: $w[0]},
	porthopd: {state_directory: "", knock: {keys_directory: $dir,
		trust_seconds: 1}}}' >"$T/knock.json"
[ -z "${NICE:-}" ] || PORTHOPD_WRAP=(nice -n "$NICE")
: >"$LOG"
topo_porthopd "$P" "$T/knock.json"
wait_log "knock: 1 client key loaded" 1 30
pairs=$(ip netns exec "$H" "$BUILD/porthop" status -s "$T/control.sock" --json | jq .pairs)

knocked_empty() {
	[ "$(ip netns exec "$H" nft -j list set inet porthop knocked4 |
		jq '[.nftables[].set.elem // empty] | length')" = 0 ]
}
: >"$T/knock.us"
fails=0
F=${P}floor
ns_new "$F"
: >"$T/connect.us"
: >"$T/elemadd.us"
: >"$T/attempts"
for i in $(seq "$ROUNDS"); do
	WAIT_POLL=0.1 wait_for 10 "the trust to run out" knocked_empty
	if ip netns exec "$C" "$BUILD/knockbench" knock "$T/bench.key" "$HOST" \
		22 62201 >"$T/round" 2>>"$T/failures"; then
		read -r us att cus <"$T/round"
		echo "$us" >>"$T/knock.us"
		echo "$att" >>"$T/attempts"
		echo "$cus" >>"$T/connect.us"
	else
		# Not let in within 5 s: counted, and the next round waits
		# for the trust to run out as usual.
		fails=$((fails + 1))
	fi
	# In a namespace of its own: a commit in the protected host's would
	# be someone else's for porthopd, whose reconciliation would then
	# check its 100,000 pairs while the next knock waits.
	ip netns exec "$F" "$BUILD/knockbench" elemadd >>"$T/elemadd.us"
done

p99() { sort -n | awk '{a[NR] = $1} END {i = int(NR * 0.99 + 0.999); if (i < 1) i = 1; print a[i]}'; }
k50=$(median <"$T/knock.us"); k99=$(p99 <"$T/knock.us")
c50=$(median <"$T/connect.us"); c99=$(p99 <"$T/connect.us")
e50=$(median <"$T/elemadd.us"); e99=$(p99 <"$T/elemadd.us")
f50=$(awk -v a="$c50" -v b="$e50" 'BEGIN {print a + b}')
f99=$(awk -v a="$c99" -v b="$e99" 'BEGIN {print a + b}')
a50=$(median <"$T/attempts")
# porthopd's own part: from the logged packet read to the element in
# force (its log line).
sed -n 's/.*knock: key bench .* (\([0-9.]*\) ms)$/\1/p' "$LOG" |
	awk '{print $1 * 1000}' >"$T/porthopd.us"
d50=$(median <"$T/porthopd.us"); d99=$(p99 <"$T/porthopd.us")
echo "# knock to real port reachable, $ROUNDS rounds, $ENTRIES watched entries ($pairs pairs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)${NICE:+, porthopd at nice $NICE}"
printf '| measure | median | p99 |\n| --- | --- | --- |\n'
printf '| knock sent -> connect to the real port succeeds | %s us | %s us |\n' "$k50" "$k99"
printf '| ... of which porthopd: packet read to element in force (its log) | %s us | %s us |\n' "$d50" "$d99"
printf '| floor: one element add with a timeout (netlink) + one connect | %s us | %s us |\n' "$f50" "$f99"
printf '| ... the element add | %s us | %s us |\n' "$e50" "$e99"
printf '| ... the connect | %s us | %s us |\n' "$c50" "$c99"
printf '| ratio to the floor | %s | %s |\n' \
	"$(awk -v a="$k50" -v b="$f50" 'BEGIN {printf "%.2f", a / b}')" \
	"$(awk -v a="$k99" -v b="$f99" 'BEGIN {printf "%.2f", a / b}')"
echo "# connect attempts per round (refused until let in): median $a50; rounds not let in within 5 s: $fails"
