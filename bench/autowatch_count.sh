#!/usr/bin/env bash
# Where autowatch counts: in porthopd from the probe packets it reads (what
# porthop does, docs/events.md#autowatch) against in the kernel, side by
# side in one run on the demo's topology plus a few hosts.
#
# The kernel variant is a measurement prototype, not part of the product:
# a table of the benchmark's own (inet akc, prerouting priority -105:
# before NAT, so it sees the port asked for) with
# what nftables can express of "at least 15 distinct closed ports within
# 300 s":
#
#   seen4   dynamic set of (source, port), timeout 300 s, 65,536 at most:
#           a probe whose pair is in it is not new and stops there
#   new4    per-source meter over the insertions into seen4: limit rate
#           over 3/minute burst 14 (a token bucket of 14 that refills at
#           15 per 300 s): the 15th new port in a quick scan is "over"
#   hot4    the verdict: the sources found over (what porthopd would be
#           told through an nflog group, and would then watch)
#   raw4/hotraw4  the same meter over every probe packet, no seen4: the
#           cheaper rule, counting packets rather than distinct ports
#
# nftables has no "count of elements per key" (ct count counts
# connections, not distinct ports), so a distinct count within a window
# is approximated by a meter over first sightings; what that costs in
# accuracy is measured below.  The probe classification mirrors
# porthop's event rules for these hosts (services 1-5, nobody trusted,
# TCP SYNs).
#
#   1. latency: one nmap SYN scan (1,000 ports); from its 15th SYN at
#      the host to its address in porthop's tracked4 (porthopd counted,
#      then watched it) and in akc's hot4 / hotraw4 (the kernel's verdict;
#      porthopd would still have to read it and add the watch).
#   2. accuracy: a client that sends 14 distinct closed ports three times
#      over (42 SYNs: retransmissions, a misconfigured client), then one
#      more port; a slow scanner, 15 distinct ports 2 s apart (28 s, well
#      inside 300 s).
#   3. a flood (hping3 --flood --rand-source) without akc, then with it
#      and a scanner hidden in it: machine-wide system+softirq CPU per
#      million packets and the flood's rate, the kernel memory akc held
#      (slab given back when its table goes), porthopd's CPU and RSS, how
#      many probes akc could not count (seen4 full), and whether each
#      variant watched the hidden scanner before the flood ended.
#
# usage: bench/autowatch_count.sh [BUILD_DIR]
#   FLOOD_SECONDS (default 10)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
FLOOD_SECONDS=${FLOOD_SECONDS:-10}
require_root "network namespaces"
require_tools nmap hping3 jq nft
. "$SRC/scripts/topology.sh"

P=pak$$
bench_tmp porthop-akc
topo_up "$P"
topo_add_host "$P" scan 10.0.0.7 fd00:70:68::7
topo_add_host "$P" flood 10.0.0.8 fd00:70:68::8
topo_add_host "$P" retry 10.0.0.9 fd00:70:68::9
topo_add_host "$P" slow 10.0.0.10 fd00:70:68::a
topo_add_host "$P" hid 10.0.0.11 fd00:70:68::b
topo_add_host "$P" hid2 10.0.0.12 fd00:70:68::c
H="ip netns exec ${P}host"
$H sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
ip netns exec "${P}flood" ip route add default dev eth0
$H taskset -c 0 "$BUILD/phsvc" serve 1 2 3 4 5 &
redis_start "${P}host"

topo_config_native "$T/base.json"
jq '.nftables_service_configuration.max_port_number = 2000
	| .porthopd.autowatch = {}' "$T/base.json" >"$T/on.json"
porthopd_start "${P}host" -c "$T/on.json" -s "$T/control.sock" -T
pid=$PORTHOPD_PID
ctl() { $H "$BUILD/porthop" "$@" -s "$T/control.sock"; }
metric() { ctl metrics | awk -v k="$1" '$1 == k {print $2}'; }

akc_load() {
	$H nft -f - <<'NFT'
table inet akc {
	set seen4 { type ipv4_addr . inet_service; flags dynamic,timeout; timeout 300s; size 65536; }
	set new4 { type ipv4_addr; flags dynamic,timeout; timeout 300s; size 65536; }
	set raw4 { type ipv4_addr; flags dynamic,timeout; timeout 300s; size 65536; }
	set hot4 { type ipv4_addr; flags dynamic,timeout; timeout 3600s; size 4096; }
	set hotraw4 { type ipv4_addr; flags dynamic,timeout; timeout 3600s; size 4096; }
	counter seen_full { }
	chain pre {
		type filter hook prerouting priority -105; policy accept;
		iifname "lo" return
		ip saddr 10.0.0.3 return
		tcp flags & (syn | ack) == syn tcp dport != 1-5 jump probe
	}
	chain probe {
		ip saddr != @hotraw4 update @raw4 { ip saddr limit rate over 3/minute burst 14 packets } add @hotraw4 { ip saddr }
		ip saddr @hot4 return
		ip saddr . tcp dport @seen4 return
		add @seen4 { ip saddr . tcp dport } update @new4 { ip saddr limit rate over 3/minute burst 14 packets } add @hot4 { ip saddr } log group 7 prefix "porthop:autowatch" return
		ip saddr . tcp dport != @seen4 counter name "seen_full"
	}
}
NFT
}
akc_load
# The SYNs of the scanners, counted before anything else sees them.
$H nft -f - <<'NFT'
table inet bench {
	counter scan_syn { }
	counter hid_syn { }
	counter hid2_syn { }
	chain pre {
		type filter hook prerouting priority -400; policy accept;
		ip saddr 10.0.0.7 tcp flags & (syn | ack) == syn counter name "scan_syn"
		ip saddr 10.0.0.11 tcp flags & (syn | ack) == syn counter name "hid_syn"
		ip saddr 10.0.0.12 tcp flags & (syn | ack) == syn counter name "hid2_syn"
	}
}
NFT
now_ms() { echo $(( ${EPOCHREALTIME/[.,]/} / 1000 )); }
in_set() { $H nft list set inet "$1" "$2" | grep -Eq "(^|[{[:space:]])${3//./\\.}([,}[:space:]]|\$)"; }
verdicts() {	# ADDRESS: "porthopd/kernel distinct/kernel raw", each yes or no
	local a=$1 u=no k=no r=no
	in_set porthop tracked4 "$a" && u=yes
	in_set akc hot4 "$a" && k=yes
	in_set akc hotraw4 "$a" && r=yes
	echo "$u / $k / $r"
}

# watch_times COUNTER ADDRESS DEADLINE_MS: polls the SYN counter and the
# three verdicts (about 10 ms a round: four nft calls) until all are seen
# or the deadline (checked in this order, so a verdict already there
# reads a few ms later than the one before it); t_below is the last read of the counter under 15,
# t_cross the first at 15 or more, t_user, t_kern, t_raw when each verdict
# was first seen (ms on the wall clock, "" if never).
watch_times() {
	local c=$1 a=$2 deadline=$(( $(now_ms) + $3 )) n t
	t_below="" t_cross="" t_user="" t_kern="" t_raw=""
	while [ -z "$t_cross" ] || [ -z "$t_user" ] || [ -z "$t_kern" ] || [ -z "$t_raw" ]; do
		[ "$(now_ms)" -lt $deadline ] || break
		t=$(now_ms)
		n=$($H nft -j list counter inet bench "$c" | jq '.nftables[1].counter.packets')
		if [ "$n" -lt 15 ]; then t_below=$t; elif [ -z "$t_cross" ]; then t_cross=$t; fi
		# Each time is taken before its check: the verdict was there by then.
		t=$(now_ms); [ -z "$t_user" ] && in_set porthop tracked4 "$a" && t_user=$t
		t=$(now_ms); [ -z "$t_kern" ] && in_set akc hot4 "$a" && t_kern=$t
		t=$(now_ms); [ -z "$t_raw" ] && in_set akc hotraw4 "$a" && t_raw=$t
		sleep 0.005
	done
	return 0
}
# since T SECONDS: the verdict's delay after the 15th SYN: "N ms" from
# t_cross when the verdict was seen in a later round; "< N ms" (from
# t_below, an upper bound) when it was seen in the same round as the
# crossing: the poll cannot tell it closer.
since() {
	if [ -z "$1" ]; then echo "not within $2 s"
	elif [ -z "$t_cross" ]; then echo "15th SYN not seen"
	elif [ "$1" -gt $(( t_cross + 2 )) ]; then echo "$(( $1 - t_cross )) ms"
	elif [ -n "$t_below" ]; then echo "< $(( $1 - t_below )) ms"
	else echo "before the first poll"; fi
}

# --- 1. latency -------------------------------------------------------------
ip netns exec "${P}scan" nmap -sS -p1-1000 -n -Pn -T4 --max-retries 1 10.0.0.2 \
	>"$T/scan1.out" 2>&1 &
scan=$!
watch_times scan_syn 10.0.0.7 60000
wait $scan || true
lat_user=$(since "$t_user" 60) lat_kern=$(since "$t_kern" 60) lat_raw=$(since "$t_raw" 60)

# --- 2. accuracy --------------------------------------------------------------
# The slow scanner starts first and runs beside the retrying client.
( for p in $(seq 3001 3015); do
	ip netns exec "${P}slow" hping3 -S -p "$p" -c 1 10.0.0.2 >/dev/null 2>&1
	sleep 2
  done ) &
slow=$!
for _ in 1 2 3; do
	ip netns exec "${P}retry" hping3 -S -p ++2001 -c 14 -i u20000 10.0.0.2 >/dev/null 2>&1
done
sleep 1
retry14=$(verdicts 10.0.0.9)
ip netns exec "${P}retry" hping3 -S -p 2015 -c 1 10.0.0.2 >/dev/null 2>&1
sleep 1
retry15=$(verdicts 10.0.0.9)
wait $slow
sleep 1
slow15=$(verdicts 10.0.0.10)

# --- 3. floods ----------------------------------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
sys_ticks() { awk '$1 == "cpu" {print $4 + $7 + $8}' /proc/stat; }
slab_kb() { awk '$1 == "SUnreclaim:" {print $2}' /proc/meminfo; }
rx() { $H cat /sys/class/net/eth0/statistics/rx_packets; }
# flood HOST ADDRESS: FLOOD_SECONDS of hping3 --flood, and 2 s in an nmap
# scan from HOST (ADDRESS), polled as in 1. (both floods alike: the poll's
# nft calls take their share of the cores).  Sets f_pkts, f_ms, f_sys (system+softirq ticks,
# all CPUs), f_cpu (porthopd's ticks).
flood() {
	local rx0 s0 c0 t0 fl hs
	rx0=$(rx) s0=$(sys_ticks) c0=$(cpu_ticks) t0=$(now_ms)
	ip netns exec "${P}flood" timeout "$FLOOD_SECONDS" hping3 --flood --rand-source \
		-S -p ++1000 10.0.0.2 >/dev/null 2>&1 &
	fl=$!
	sleep 2
	ip netns exec "${P}$1" nmap -sS -p1-2000 -n -Pn -T4 --max-retries 1 \
		10.0.0.2 >"$T/$1.out" 2>&1 &
	hs=$!
	watch_times "$1_syn" "$2" $(( (FLOOD_SECONDS - 2) * 1000 ))
	wait $fl 2>/dev/null || true
	f_ms=$(( $(now_ms) - t0 ))
	f_pkts=$(( $(rx) - rx0 )) f_sys=$(( $(sys_ticks) - s0 ))
	f_cpu=$(( $(cpu_ticks) - c0 ))
	wait $hs || true
}
per_m() { awk -v t="$1" -v p="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz / (p / 1e6)}'; }
rss0=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status")
# akc's sets stay defined but empty and unused: hot4 and hotraw4 are
# polled in both floods.
$H nft delete table inet akc
$H nft -f - <<'NFT'
table inet akc {
	set hot4 { type ipv4_addr; }
	set hotraw4 { type ipv4_addr; }
}
NFT
flood hid 10.0.0.11
a_user=$(since "$t_user" $((FLOOD_SECONDS - 2)))
a_pkts=$f_pkts a_sys=$f_sys a_cpu=$f_cpu a_ms=$f_ms
sleep 2
$H nft delete table inet akc
akc_load
flood hid2 10.0.0.12
b_pkts=$f_pkts b_sys=$f_sys b_cpu=$f_cpu b_ms=$f_ms
hid_user=$(since "$t_user" $((FLOOD_SECONDS - 2)))
hid_kern=$(since "$t_kern" $((FLOOD_SECONDS - 2)))
hid_raw=$(since "$t_raw" $((FLOOD_SECONDS - 2)))
seen=$($H nft -j list set inet akc seen4 | jq '[.nftables[] | .set? // empty | .elem // [] | length] | add')
full=$($H nft -j list counter inet akc seen_full | jq '.nftables[1].counter.packets')
rss1=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status")
hwm=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$pid/status")
sources=$(metric porthop_autowatch_sources)
# akc's kernel memory: what deleting its table gives back (the machine's
# unreclaimable slab, read after the RCU grace periods; machine-wide, so
# a rough figure while anything else runs).
sl0=$(slab_kb)
$H nft delete table inet akc
sleep 2
akc_kb=$(( sl0 - $(slab_kb) ))

cat <<EOF

## where autowatch counts ($(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r))

| what | porthopd (from the probe packets) | kernel, distinct (seen4 + meter) | kernel, raw (meter over packets) |
| --- | --- | --- | --- |
| nmap SYN scan, 1,000 ports: 15th SYN at the host -> verdict | $lat_user (watched) | $lat_kern (in hot4: porthopd not yet told) | $lat_raw (in hotraw4) |
| 14 distinct ports sent 3 times (42 SYNs): watched? | ${retry14%% / *} | $(echo "$retry14" | awk -F' / ' '{print $2}') | ${retry14##* / } |
| ... then a 15th distinct port: watched? | ${retry15%% / *} | $(echo "$retry15" | awk -F' / ' '{print $2}') | ${retry15##* / } |
| 15 distinct ports 2 s apart (28 s): watched? | ${slow15%% / *} | $(echo "$slow15" | awk -F' / ' '{print $2}') | ${slow15##* / } |
| scanner (nmap, 2,000 ports) hidden in a random-source flood: 15th SYN -> verdict | $a_user (akc absent); $hid_user (akc present) | $hid_kern | $hid_raw |
| flood: packets at the host | $a_pkts in $a_ms ms (akc absent) | $b_pkts in $b_ms ms (akc present) | |
| ... system+softirq CPU, whole machine, s per million packets | $(per_m "$a_sys" "$a_pkts") (akc absent) | $(per_m "$b_sys" "$b_pkts") (akc present) | |
| ... flood rate at the host (one sending core; packets/s) | $((a_pkts * 1000 / a_ms)) (akc absent) | $((b_pkts * 1000 / b_ms)) (akc present) | |
| ... kernel memory akc held (slab given back when its table went) | | $akc_kb kB (both meters and sets) | |
| ... (source, port) pairs held in seen4 / probes akc could not count (seen4 full) | | $seen / $full | |
| ... porthopd: CPU over both floods / RSS before, after, peak / sources counted | $(awk -v t="$((a_cpu + b_cpu))" -v hz="$(getconf CLK_TCK)" -v ms="$((a_ms + b_ms))" 'BEGIN {printf "%.3f", t / hz / (ms / 1000)}') cores / $rss0, $rss1, $hwm kB / $sources | | |
EOF
porthopd_stop
