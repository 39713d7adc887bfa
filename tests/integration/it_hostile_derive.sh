#!/usr/bin/env bash
# Hostile derive keys (docs/follow.md).  `porthop keygen` refuses a pool
# whose first port is out of range instead of wrapping it (131073 became
# port 1).  A configuration whose derive_key is a FIFO, a directory, a
# device, a huge file, a file others may read (directly or through a
# symlink), a knock key, a key for other services or whose pool holds
# another service's port: porthopd exits 78 with the reason and the kernel has no
# table; the same keys brought by a SIGHUP are refused and the running
# rules stay.  An attacker in the keyed network without the key sends
# what conntrack calls invalid (FIN|ACK) to ports it knows: every reply
# comes from the port it went to (a port of the previous or next slot
# answered from the current slot's port, and a closed port of the pool
# from the real port, before the stateless swaps used one map both ways).
. "$(dirname "$0")/lib.sh"
require_tools nping socat

# --- keygen: the pool's bounds ----------------------------------------------

for pool in 131073-2000 65536-65535 4294967297-5000 " +5000-6000" 5000-6000x; do
	rc=0
	out=$("$PORTHOP" keygen p -o "$T/p.key" --use derive --tcp 22 \
		--pool "$pool" 2>&1) || rc=$?
	[ $rc -eq 64 ] || fail "keygen --pool \"$pool\": exit $rc: $out"
	[ ! -e "$T/p.key" ] || fail "keygen --pool \"$pool\" wrote $(cat "$T/p.key")"
	grep -qF -- "--pool \"$pool\": expected FIRST-LAST" <<<"$out" \
		|| fail "keygen --pool \"$pool\": no clear refusal: $out"
done
"$PORTHOP" keygen p -o "$T/p.key" --use derive --tcp 22 --pool 5000-6000 >/dev/null
[ "$(jq -c .pool "$T/p.key")" = "[5000,6000]" ] || fail "keygen --pool 5000-6000: $(cat "$T/p.key")"
pass "keygen refuses pools out of range instead of wrapping them"

# --- hostile derive keys at start-up ----------------------------------------

KEY=$T/alice.key
"$PORTHOP" keygen alice -o "$KEY" --use derive --slot-seconds 5 --tcp 22 >/dev/null

# keyed_config FILE KEYPATH: the keyed entry 10.0.0.0/8 (ssh) with
# KEYPATH; the host serves 80 too, which that entry leaves alone.
keyed_config() {
	native_config "$1" <<JSON
{"max_port_number": 65535, "tcp_ports": [22, 80], "watched_addresses": [
  {"ip": "10.0.0.0/8", "derive_key": "$2", "tcp_ignore": [80]},
  {"ip": "192.0.2.9"}]}
JSON
}

mkfifo "$T/fifo"
head -c 300000 /dev/zero >"$T/huge"
chmod 600 "$T/huge"
cp "$KEY" "$T/readable.key"
chmod 644 "$T/readable.key"
ln -s "$T/readable.key" "$T/link.key"
"$PORTHOP" keygen bob -o "$T/knock.key" --use knock >/dev/null
"$PORTHOP" keygen carol -o "$T/other.key" --use derive --tcp 22,80 >/dev/null
"$PORTHOP" keygen dave -o "$T/pool.key" --use derive --tcp 22 --pool 1-2000 >/dev/null
declare -A WHY=(
	[fifo]="is not a regular file"
	[dir]="is not a regular file"
	[dev]="is not a regular file"
	[huge]="larger than 262144 bytes"
	[readable]="is readable or writable by others (mode 644)"
	[link]="is readable or writable by others (mode 644)"
	[knock]="is of use \"knock\"; expected a key of use \"derive\""
	[other]="derives tcp ports [22, 80]; expected the entry's tcp ports [22]"
	[pool]="has the pool 1-2000, which holds the service port 80"
)
declare -A PATHOF=(
	[fifo]=$T/fifo [dir]=$T [dev]=/dev/zero [huge]=$T/huge
	[readable]=$T/readable.key [link]=$T/link.key [knock]=$T/knock.key
	[other]=$T/other.key [pool]=$T/pool.key
)
for k in "${!PATHOF[@]}"; do
	keyed_config "$T/$k.json" "${PATHOF[$k]}"
	rc=0
	out=$(timeout 20 ip netns exec "$NS" "$PORTHOPD" -c "$T/$k.json" 2>&1) || rc=$?
	[ $rc -eq 78 ] || fail "derive_key $k: exit $rc: $out"
	grep -qF "watched_addresses[0].derive_key: " <<<"$out" \
		|| fail "derive_key $k: the entry not named: $out"
	grep -qF "${WHY[$k]}" <<<"$out" || fail "derive_key $k: no \"${WHY[$k]}\": $out"
	[ -z "$(nsx nft list ruleset)" ] || fail "derive_key $k: the kernel changed"
done
pass "hostile derive keys at start: exit 78, the reason, nothing in the kernel"

# --- the same brought by a reload -------------------------------------------

keyed_config "$T/good.json" "$KEY"
start_porthopd "$T/good.json" --no-redis
before=$(nsx nft list ruleset | grep -c "elements\|dp0\|derive" || true)
[ "$before" -gt 0 ] || fail "no derived ports' objects after a good start"
n=0
for k in fifo huge link other pool; do
	cp "$T/$k.json" "$T/good.json"
	kill -HUP "$(cat "$T/porthopd.pid")"
	n=$((n + 1))
	wait_log "reload refused" $n
	porthopd_alive || fail "porthopd died on the reload with derive_key $k"
done
keyed_config "$T/good.json" "$KEY"
nsx nft list map inet porthop dp0 >/dev/null || fail "the derived ports' map went"
stop_porthopd
pass "hostile derive keys by SIGHUP: refused, porthopd and its rules stay"

# --- stateless probes from a keyed source without the key -------------------

SLOT=30
HOST=10.77.0.1
CL=ph-cl-$$-$RANDOM
ns_new "$CL"
ns_link "$NS" "$HOST" "$CL" 10.77.0.2
"$PORTHOP" keygen eve -o "$T/eve.key" --use derive --slot-seconds $SLOT --tcp 22 >/dev/null
native_config "$T/eve.json" <<JSON
{"max_port_number": 65535, "tcp_ports": [22],
 "watched_addresses": [{"ip": "10.77.0.0/24", "derive_key": "$T/eve.key"}]}
JSON
nsx socat TCP-LISTEN:22,bind=$HOST,fork,reuseaddr EXEC:/bin/cat &
wait_for 10 "the service listening" nsx socat -u OPEN:/dev/null TCP:$HOST:22
: >"$LOG"
start_porthopd "$T/eve.json" --no-redis
# Within one slot, with 8 s to spare.
slot_left() { [ $((SLOT - $(date +%s) % SLOT)) -gt 8 ]; }
wait_until $SLOT slot_left
at() { "$PORTHOP" follow $HOST 22 --key "$T/eve.key" --at "$1"; }
cur=$(at now) prev=$(at now-$SLOT) next=$(at now+$SLOT)
# 1026: the first port of the default pool in class 0, the closed port
# the real port's tracked probes are sent to.
for p in "$prev" "$next" "$cur" 22 1026; do
	reply=$(ip netns exec "$CL" nping --tcp --flags fin,ack -p "$p" $HOST -c 1 2>&1 |
		awk '$1 == "RCVD" {print $4; exit}')
	[ "$reply" = "$HOST:$p" ] || fail "FIN|ACK to $p (slot ports: $prev $cur $next): answered from ${reply:-nothing}"
done
stop_porthopd
pass "stateless probes are answered from the port they went to: neither the current port nor the real one is told"
