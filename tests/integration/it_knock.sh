#!/usr/bin/env bash
# Single packet authorisation end to end (docs/knock.md), with a real
# sshd on the protected host and every client watched (0.0.0.0/0):
#   1. a client logs in with ssh -o ProxyCommand='porthop connect %h %p'
#      and a knock key (ssh key authentication, BatchMode);
#   2. an open session (the client sends a line every half second, the
#      server echoes it) lives through 20 reshuffles and the knock's
#      trust expiring, with untrack_unwatched false, true and "auto";
#   3. without a key the client sees only moved or closed ports, and
#      porthop connect says what failed;
#   4. nmap -sU from a watched scanner: the knock port and its neighbours
#      look as they do on a control host without porthop;
#   5. malformed, truncated, oversized, wrong-key, unknown-key, replayed,
#      future-dated and stale knocks: refused, counted per reason, logged
#      through the limit;
#   5b. a knock over IPv6, and one that names another address to let in;
#   6. a revoked key (its file deleted, porthop reload) is refused;
#   7. a flood of 1,000,000 junk knocks (hping3, bounded in time): RSS and
#      the replay table bounded, porthopd answers, a knock still works.
. "$(dirname "$0")/lib.sh"
require_tools nmap hping3 socat ssh ssh-keygen sshd
. "$SRC/scripts/topology.sh"

P=phk$$
topo_up "$P"
H="${P}host"
HOST=${TOPO_ADDR[host]}
CLIENT=${P}bad
SCANNER=${P}good
SCANNER_ADDR=${TOPO_ADDR[good]}
# The control host: the same kernel, no porthop.
topo_add_host "$P" ctl 10.0.0.9 fd00:70:68::9
CONTROL=10.0.0.9
for h in host ctl; do
	ip netns exec "${P}$h" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
done
ctl() { host_ctl "$@"; }

# --- sshd on the protected host, a throwaway key pair for root ----------
sshd_up "$H" "$HOST" "${TOPO_ADDR6[host]}"

# --- keys: alice's in the keys directory; mallory's is not ---------------
mkdir -m 700 "$T/clients" "$T/client"
"$PORTHOP" keygen alice -o "$T/client/alice.key" >/dev/null
cp "$T/client/alice.key" "$T/clients/alice.key"
"$PORTHOP" keygen mallory -o "$T/client/mallory.key" >/dev/null
# Another secret under alice's name.
"$PORTHOP" keygen alice -o "$T/client/alice-forged.key" >/dev/null

# config UNTRACK: every client watched, sshd the one service, knocks on.
config() {
	topo_config_native "$T/base.json"
	jq --arg dir "$T/clients" --argjson u "$1" '
		.nftables_service_configuration.max_port_number = 2000
		| .nftables_service_configuration.tcp_ports = [22]
		| del(.nftables_service_configuration.udp_ports)
		| .nftables_service_configuration.watched_addresses =
			[{ip: "0.0.0.0/0"}, {ip: "::/0"}]
		| .nftables_service_configuration.untrack_unwatched = $u
		| .porthopd.knock = {port: 62201, protocol: "udp",
				     keys_directory: $dir, trust_seconds: 3,
				     window_seconds: 30}' \
		"$T/base.json" >"$T/knock.json"
}
start() {
	config "$1"
	: >"$LOG"
	topo_porthopd "$P" "$T/knock.json"
	echo "$PORTHOPD_PID" >"$T/porthopd.pid"
	wait_log "knock: 1 client key loaded" 1 10
}
stop() {
	PORTHOPD_PID=$(cat "$T/porthopd.pid")
	porthopd_stop || fail "porthopd exited with an error"
	redis_stop "$H"
}

SSH=(ssh -F /dev/null -i "$T/id" -o StrictHostKeyChecking=no
     -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=20
     -o LogLevel=ERROR)
PROXY="ProxyCommand=$PORTHOP connect %h %p --key $T/client/alice.key"
knocked4() {
	ip netns exec "$H" nft -j list set inet porthop knocked4 |
		jq -r '[.nftables[].set.elem // empty | .[] | .elem.val // .] | join(" ")'
}
knocked_empty() { [ -z "$(knocked4)" ]; }
ticks() { grep -c '^tick' "$T/ticks" 2>/dev/null || true; }
ticks_above() { [ "$(ticks)" -gt "$1" ]; }
metric() {
	ctl metrics | awk -v k="$1" '$1 == k {print $2}'
}
knocks() { metric "porthop_knocks_total{result=\"$1\"}"; }
knocks_above() { [ "$(knocks "$1")" -gt "$2" ]; }

# --- 1 and 2, in each untrack_unwatched setting --------------------------
for untrack in false true '"auto"'; do
	start "$untrack"
	out=$(ip netns exec "$CLIENT" "${SSH[@]}" -o "$PROXY" root@"$HOST" \
		echo logged-in) || fail "ssh through porthop connect failed (untrack $untrack)"
	[ "$out" = logged-in ] || fail "ssh printed \"$out\""
	log_has "knock: key alice from ${TOPO_ADDR[bad]} let ${TOPO_ADDR[bad]} in for 3 s" 1 ||
		fail "no knock line in the log"
	pass "ssh with ProxyCommand porthop connect and a knock key (untrack_unwatched $untrack)"

	# The client speaks first (a line every half second, the server's
	# cat echoes it): after the trust has run out, the connection's next
	# packet is the client's, the one a mid-stream pickup would send
	# through the nat chain.
	: >"$T/ticks"
	(while :; do echo tick; sleep 0.5; done |
		ip netns exec "$CLIENT" "${SSH[@]}" -o "$PROXY" root@"$HOST" cat \
		>"$T/ticks" 2>"$T/ssh.err") &
	session=$!
	wait_for 20 "the session's first ticks" ticks_above 1
	n=$(log_count "applied")
	for i in $(seq 20); do
		ctl shuffle >/dev/null
		wait_log "applied" $((n + i)) 20
	done
	wait_for 20 "the knock's trust to expire" knocked_empty
	after=$(ticks)
	wait_for 20 "echoes after 20 reshuffles and the trust expired" ticks_above $((after + 6))
	kill -0 "$session" 2>/dev/null || fail "the session ended: $(cat "$T/ssh.err")"
	pkill -P "$session" 2>/dev/null || true
	kill "$session" 2>/dev/null || true
	wait "$session" 2>/dev/null || true
	pass "a session lives through 20 reshuffles and the trust expiring (untrack_unwatched $untrack, $(ticks) ticks)"
	[ "$untrack" = '"auto"' ] || stop
done

# --- 3. without a key: moved or closed ports, clear failures -------------
redirect=$(ip netns exec "$H" nft -j list map inet porthop net4 | jq -r '
	.nftables[] | .map? // empty | .elem // [] | .[]
	| select(.[0].concat[2] == 22) | .[1]' | head -n1)
[ -n "$redirect" ] || fail "no redirect port for 22 in net4"
scan=$(ip netns exec "$CLIENT" nmap -sS -p "22,$redirect" -n -Pn --max-retries 2 \
	-oG - "$HOST" 2>/dev/null | grep -o 'Ports: .*' || true)
case $scan in
*"22/closed/"*"$redirect/open/"*) ;;
*) fail "without a knock the client saw \"$scan\"; expected 22 closed, $redirect open" ;;
esac
rc=0
ip netns exec "$CLIENT" ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=5 \
	root@"$HOST" true 2>/dev/null || rc=$?
[ $rc -ne 0 ] || fail "plain ssh to port 22 got in without a knock"
rc=0
msg=$(ip netns exec "$CLIENT" env -u PORTHOP_KEY HOME="$T/none" "$PORTHOP" connect "$HOST" 22 2>&1 </dev/null) || rc=$?
[ $rc -eq 66 ] && [[ $msg == *"no key"* ]] || fail "connect without a key: $rc \"$msg\""
rc=0
msg=$(ip netns exec "$CLIENT" "$PORTHOP" connect "$HOST" 22 --timeout 2 \
	--key "$T/client/mallory.key" 2>&1 </dev/null) || rc=$?
[ $rc -eq 69 ] && [[ $msg == *"connection refused after knocking"* ]] ||
	fail "connect with a key porthopd does not know: $rc \"$msg\""
pass "without a key: 22 closed, $redirect (moved) open; connect says no key (66) or refused (69)"

# --- 4. nmap -sU: the knock port looks like any closed port --------------
udp_scan() {
	ip netns exec "$SCANNER" nmap -sU -p 62199-62203 -n -Pn --max-retries 2 \
		-oG - "$1" 2>/dev/null | grep -o 'Ports: .*\|Ignored State: [a-z]* ([0-9]*)' | tr -d '\n'
}
protected=$(udp_scan "$HOST")
control=$(udp_scan "$CONTROL")
[ -n "$control" ] || fail "no scan result from the control host"
[ "$protected" = "$control" ] ||
	fail "nmap -sU sees the protected host as \"$protected\", the control host as \"$control\""
pass "nmap -sU of the knock port and its neighbours: \"$protected\" on both hosts"

# --- 5. bad knocks, each refused for its reason ---------------------------
# send_hex HEX: one datagram from the scanner to the knock port (socat
# sends what it reads from the file as one datagram).
send_hex() {
	printf '%b' "$(printf '%s' "$1" | sed 's/../\\x&/g')" >"$T/dgram"
	ip netns exec "$SCANNER" socat -u "FILE:$T/dgram" "UDP-SENDTO:$HOST:62201"
}
knock_hex() {
	"$PORTHOP" knock --hex "$@"
}
now=$(date +%s)
good=$(knock_hex --key "$T/client/alice.key")
declare -A SENT=(
	[malformed]=$(printf 'hello, porthop' | od -An -tx1 | tr -d ' \n')
	[truncated]=${good:0:80}
	[oversized]=${good}00
	[bad_mac]=$(knock_hex --key "$T/client/alice-forged.key")
	[unknown_key]=$(knock_hex --key "$T/client/mallory.key")
	[future]=$(knock_hex --key "$T/client/alice.key" --time $((now + 300)))
	[stale]=$(knock_hex --key "$T/client/alice.key" --time $((now - 300)))
)
for reason in "${!SENT[@]}"; do
	before=$(knocks "$reason")
	send_hex "${SENT[$reason]}"
	wait_for 10 "a knock refused as $reason" knocks_above "$reason" "$before"
done
ok0=$(knocks ok)
send_hex "$good"
wait_for 10 "the good knock accepted" knocks_above ok "$ok0"
before=$(knocks replay)
send_hex "$good"
wait_for 10 "the same knock again refused as a replay" knocks_above replay "$before"
# Refusals are logged through a limit (5 lines every 10 s): once the
# window of the refusals above has passed, the next one is said.
refusal_logged() {
	send_hex "${SENT[truncated]}"
	log_has "knock from $SCANNER_ADDR refused: truncated" 1
}
WAIT_POLL=0.5 wait_for 15 "a refusal in the log" refusal_logged
# A burst of 50: its log lines stay within the limit (5 every 10 s, and
# one that says how many were held back).
lines0=$(log_count "knock from .* refused")
m0=$(knocks malformed)
for i in $(seq 50); do send_hex 00; done
wait_for 10 "50 more malformed knocks counted" knocks_above malformed $((m0 + 49))
lines=$(( $(log_count "knock from .* refused") - lines0 ))
[ "$lines" -le 6 ] || fail "50 refusals logged $lines lines"
pass "bad knocks refused and counted per reason; 50 refusals logged in $lines lines"

# --- 5b. IPv6; an address named inside the knock -------------------------
knocked6() {
	ip netns exec "$H" nft -j list set inet porthop knocked6 |
		jq -r '[.nftables[].set.elem // empty | .[] | .elem.val // .] | join(" ")'
}
out=$(ip netns exec "$CLIENT" "${SSH[@]}" -o "$PROXY" root@"${TOPO_ADDR6[host]}" \
	echo logged-in-6) || fail "ssh over IPv6 through porthop connect failed"
[ "$out" = logged-in-6 ] || fail "ssh over IPv6 printed \"$out\""
[[ " $(knocked6) " == *" ${TOPO_ADDR6[bad]} "* ]] || fail "knocked6 holds \"$(knocked6)\""
# The scanner knocks for the control host, which then reaches the real
# port 22 with plain ssh (its key refused by sshd: reaching it is what
# counts, so the banner is looked for).
ip netns exec "$SCANNER" "$PORTHOP" knock "$HOST" --key "$T/client/alice.key" \
	--address "$CONTROL"
in_knocked4() { [[ " $(knocked4) " == *" $1 "* ]]; }
wait_for 10 "$CONTROL in knocked4" in_knocked4 "$CONTROL"
in_knocked4 "$SCANNER_ADDR" && fail "the knock let its sender in too"
banner=$(ip netns exec "${P}ctl" timeout 5 bash -c \
	"exec 3<>/dev/tcp/$HOST/22; head -c 7 <&3" 2>/dev/null || true)
[ "$banner" = "SSH-2.0" ] || fail "the named address did not reach port 22 (\"$banner\")"
pass "a knock over IPv6 (ssh through it); a knock naming $CONTROL lets that address in, not its sender"

# --- 6. revocation: alice's file deleted, porthop reload ------------------
rm "$T/clients/alice.key"
ctl reload >/dev/null
wait_log "knock: 0 client keys loaded" 1 10
before=$(knocks unknown_key)
ip netns exec "$CLIENT" "$PORTHOP" knock "$HOST" --key "$T/client/alice.key"
wait_for 10 "alice's knock refused once revoked" knocks_above unknown_key "$before"
cp "$T/client/alice.key" "$T/clients/alice.key"
ctl reload >/dev/null
wait_log "knock: 1 client key loaded" 2 10
pass "a deleted key file and a reload: the client is refused"

# --- 7. a flood of junk knocks --------------------------------------------
rx() { ip netns exec "$H" cat /sys/class/net/eth0/statistics/rx_packets; }
rx0=$(rx)
ip netns exec "$SCANNER" timeout 60 hping3 --flood --udp -p 62201 -d 90 "$HOST" \
	>/dev/null 2>&1 &
flood=$!
while kill -0 $flood 2>/dev/null && [ $(( $(rx) - rx0 )) -lt 1000000 ]; do
	sleep 0.2
done
kill $flood 2>/dev/null || true
wait $flood 2>/dev/null || true
packets=$(( $(rx) - rx0 ))
pid=$(cat "$T/porthopd.pid")
rss=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$pid/status")
replay=$(metric porthop_knock_replay_entries)
[ "$replay" -le 4096 ] || fail "the replay table holds $replay entries"
if [ -z "${ASAN_OPTIONS:-}" ] && [ "${PORTHOP_VALGRIND:-0}" != 1 ]; then
	[ "$rss" -lt 65536 ] || fail "porthopd's peak RSS is $rss kB after the flood"
fi
held=$(metric porthop_knock_kernel_limit_total)
[ "$held" -gt 0 ] || fail "no knock counted as held back by the kernel's limit"
ok0=$(knocks ok)
ip netns exec "$CLIENT" "$PORTHOP" knock "$HOST" --key "$T/client/alice.key"
wait_for 10 "a knock accepted after the flood" knocks_above ok "$ok0"
pass "a flood of $packets junk knocks: peak RSS $rss kB, replay table $replay, $held held back by the kernel's limit, $(knocks oversized) oversized and $(knocks malformed) malformed read; knocks still work"
stop
