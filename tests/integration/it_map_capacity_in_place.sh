#!/usr/bin/env bash
# map_capacity on a table redefined in place (more than 20,000 pairs:
# engine.c apply_setup, then the elements in a second transaction): a
# reload that changes map_capacity must leave the kernel's size the one
# porthopd counts with.  Each step checks the size nft lists against the
# configuration, then that porthopd's count and the kernel's agree on one
# more address.
. "$(dirname "$0")/lib.sh"

cfg=$T/cap.json
# 100 TCP ports and UDP 53: 101 services; 200 addresses are 20,200 pairs,
# past NATIVE_ATOMIC_SETUP_MAX (20,000).
extra=$(jq -n '{map_capacity: 200,
	tcp_ports: [range(1000; 1100)],
	watched_addresses: [range(0; 200) | {ip: "10.1.\(. / 100 | floor).\(. % 100 + 1)"}]}')
watch_config "$cfg" "$extra"

size_of() {
	nsx nft -j list map inet porthop "$1" | jq -r '.nftables[] | select(.map) | .map.size // "-"'
}

set_capacity() {
	jq ".nftables_service_configuration.map_capacity = $1" "$cfg" >"$cfg.tmp"
	mv "$cfg.tmp" "$cfg"
	ctl reload >/dev/null || fail "reload to map_capacity $1 refused"
}

start_redis
start_porthopd "$cfg"
[ "$(size_of swap4)" = 40400 ] || fail "swap4's size: $(size_of swap4), expected 40400"
pass "start: swap4 of size 40400 (200 x 101 x 2)"

set_capacity 0
s=$(size_of swap4)
rc=0
ctl watch add 192.0.2.1 >"$T/out" 2>&1 || rc=$?
[ "$s" = "-" ] || fail "after a reload to map_capacity 0 (unsized) swap4 still has size $s; watch add: exit $rc: $(cat "$T/out")"
[ "$rc" -eq 0 ] || fail "watch add after map_capacity 0: exit $rc: $(cat "$T/out")"
pass "a reload to map_capacity 0 in place leaves swap4 unsized"

# Back to a size, the runtime entry in force: 201 addresses fill it.
set_capacity 201
for m in swap4 swap4_b swap6 swap6_b; do
	[ "$(size_of $m)" = 40602 ] || fail "after a reload to map_capacity 201 $m has size $(size_of $m), expected 40602"
done
rc=0
ctl watch add 192.0.2.2 >"$T/out" 2>&1 || rc=$?
[ "$rc" -eq 65 ] && grep -q "needs 101 pairs and the IPv4 maps have room for 0 more (20301 of 20301 pairs" "$T/out" ||
	fail "an add past map_capacity 201: exit $rc: $(cat "$T/out")"
pass "a reload to map_capacity 201 in place: maps of 40602 (both generations), full with the runtime entry"

stop_porthopd
