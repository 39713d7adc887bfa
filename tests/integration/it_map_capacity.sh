#!/usr/bin/env bash
# map_capacity in the kernel (native mode): the swap maps of both
# generations are declared with their size (2 elements a pair), the
# interval maps without; porthopd's count of the room left is the
# kernel's (the map porthopd calls full takes no element more from nft
# itself); an address past it is refused with its reason and changes
# nothing, and status shows the room; prefixes and the other family
# still fit; a reload with a larger capacity redefines the maps with the
# runtime entries in force, one without room for them is refused.
. "$(dirname "$0")/lib.sh"

cfg=$T/cap.json
# 4 services (TCP 22, 80, 443, UDP 53): 2 addresses a family are 8 pairs,
# 16 elements.
watch_config "$cfg" '{"map_capacity": 2, "prestage": true}'

# sizes: "MAP SIZE" of every map of the table (SIZE "-": none declared).
sizes() {
	nsx nft -j list table inet porthop | jq -r '.nftables[] | select(.map)
		| "\(.map.name) \(.map.size // "-")"' | sort
}

# count MAP: the elements of MAP.
count() {
	nsx nft -j list map inet porthop "$1" | jq '[.nftables[] | select(.map)
		| .map.elem // [] | .[]] | length'
}

start_redis
start_porthopd "$cfg"

sizes >"$T/sizes"
want=$(printf '%s\n' "net4 -" "net4_b -" "net6 -" "net6_b -" \
	"swap4 16" "swap4_b 16" "swap6 16" "swap6_b 16")
[ "$(cat "$T/sizes")" = "$want" ] || fail "map sizes: $(tr '\n' ' ' <"$T/sizes"), expected $(echo $want)"
pass "the swap maps of both generations declare size 16, the interval maps none"

ctl watch add 192.0.2.7 >/dev/null
[ "$(count swap4)" -eq 16 ] || fail "swap4 holds $(count swap4) elements, expected 16"
expect_exit 65 ctl watch add 192.0.2.8
grep -q "needs 4 pairs and the IPv4 maps have room for 0 more (8 of 8 pairs: map_capacity 2)" "$T/out" ||
	fail "a refused add said: $(cat "$T/out")"
[ "$(count swap4)" -eq 16 ] || fail "the refused add changed swap4: $(count swap4) elements"
ctl watch list >"$T/list"
! grep -q 192.0.2.8 "$T/list" || fail "the refused address is listed: $(cat "$T/list")"
pass "an address past map_capacity refused (exit 65, the reason named), nothing changed"

[ "$(status maps.pairs_ipv4)/$(status maps.pairs_max)/$(status maps.map_capacity)" = 8/8/2 ] ||
	fail "status maps: $(ctl status --json | jq -c .maps)"
ctl status | grep -q "^maps  *IPv4 8 of 8 pairs, IPv6 0 of 8 (map_capacity 2)" ||
	fail "porthop status: $(ctl status | grep maps)"
pass "porthop status shows the maps' room"

# The kernel agrees that the map is full: nft's own add is refused.
if nsx nft add element inet porthop swap4 '{ 203.0.113.1 . tcp . 1 : 2 }' 2>"$T/nft.err"; then
	fail "the kernel took a 17th element into a map of size 16"
fi
pass "the kernel refuses a 17th element too ($(head -c 80 "$T/nft.err" | tr '\n' ' '))"

ctl watch add 198.51.100.0/24 >/dev/null
ctl watch add 2001:db8:7::1 >/dev/null
[ "$(count swap6)" -eq 8 ] || fail "swap6 holds $(count swap6) elements, expected 8"
pass "a prefix and an IPv6 address still fit"

jq '.nftables_service_configuration.map_capacity = 3' "$cfg" >"$cfg.tmp"
mv "$cfg.tmp" "$cfg"
ctl reload >/dev/null
sizes | grep -qx "swap4 24" || fail "after the reload: $(sizes | tr '\n' ' ')"
[ "$(count swap4)" -eq 16 ] || fail "after the reload swap4 holds $(count swap4) elements, expected 16"
ctl watch add 192.0.2.8 >/dev/null
[ "$(count swap4)" -eq 24 ] || fail "swap4 holds $(count swap4) elements, expected 24"
pass "a reload to map_capacity 3: maps of 24, the runtime entries in force, room for one more"

# Less room than the runtime entries take: the reload is refused, the
# running configuration and every entry stay in force.
jq '.nftables_service_configuration.map_capacity = 2' "$cfg" >"$cfg.tmp"
mv "$cfg.tmp" "$cfg"
expect_exit 78 ctl reload
grep -q "reload refused, the running configuration stays: it has no room for 1 runtime entry" "$T/out" ||
	fail "a reload without room said: $(cat "$T/out")"
sizes | grep -qx "swap4 24" || fail "after the refused reload: $(sizes | tr '\n' ' ')"
[ "$(count swap4)" -eq 24 ] || fail "after the refused reload swap4 holds $(count swap4) elements, expected 24"
[ "$(status maps.map_capacity)" = 3 ] || fail "status says map_capacity $(status maps.map_capacity) after the refused reload"
pass "a reload to map_capacity 2 with 3 addresses in force: refused (exit 78), nothing changed"

stop_porthopd
