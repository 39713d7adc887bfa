#!/usr/bin/env bash
# Real traffic: the bad scanner reaches each real service through its
# moved port (the banner names it), and long-lived connections from bad
# (through a moved port) and from good survive 20 shuffles with every byte
# echoed back intact after each.  In mode "untracked" (native with
# untrack_unwatched), good's packets must also bypass connection tracking
# in both directions while bad's are tracked (and translated).
MODE=${2:-template}
. "$(dirname "$0")/lib.sh"

# Counters of tracked and untracked packets, by client, both directions
# (not in template mode: the reference's shuffle flushes the ruleset).
[ "$MODE" = template ] || $H nft -f - <<'NFT'
table inet phcheck {
	chain in {
		type filter hook input priority filter; policy accept;
		ip saddr 10.0.0.4 ct state untracked counter
		ip saddr 10.0.0.4 ct state != untracked counter
		ip saddr 10.0.0.3 ct state untracked counter
		ip saddr 10.0.0.3 ct state != untracked counter
	}
	chain out {
		type filter hook output priority filter; policy accept;
		ip daddr 10.0.0.4 ct state untracked counter
		ip daddr 10.0.0.4 ct state != untracked counter
		ip daddr 10.0.0.3 ct state untracked counter
		ip daddr 10.0.0.3 ct state != untracked counter
	}
}
NFT
# counts: "in-untracked in-tracked out-untracked out-tracked" for $1.
counts() {
	$H nft -j list table inet phcheck | jq -r --arg a "$1" '
		[.nftables[] | select(.rule) | .rule
		 | select(.expr[0].match.right == $a) | .expr[2].counter.packets]
		| map(tostring) | join(" ")'
}

while read -r real redir; do
	banner=$(ip netns exec "${P}bad" timeout 5 bash -c "exec 3<>/dev/tcp/10.0.0.2/$redir; head -n 1 <&3")
	[ "$banner" = "porthop-demo service on port $real" ] \
		|| fail "bad -> 10.0.0.2:$redir answered [$banner], expected the service of port $real"
	# And the real port itself looks closed to bad.
	if ip netns exec "${P}bad" timeout 5 bash -c "exec 3<>/dev/tcp/10.0.0.2/$real" 2>/dev/null; then
		fail "bad could connect to real port $real"
	fi
	pass "bad -> 10.0.0.2:$redir reaches the service of port $real; port $real is closed to bad"
done < <(topo_redirects "$P" 10.0.0.3)

read -r real3 redir3 < <(topo_redirects "$P" 10.0.0.3 | awk '$1 == 3')
mkfifo "$T/bad.in" "$T/good.in"
ip netns exec "${P}bad" "$BUILD/phsvc" echo 10.0.0.2 "$redir3" <"$T/bad.in" >"$T/bad.out" &
badpid=$!
ip netns exec "${P}good" "$BUILD/phsvc" echo 10.0.0.2 3 <"$T/good.in" >"$T/good.out" &
goodpid=$!
exec 7>"$T/bad.in" 8>"$T/good.in"
wait_until 10 grep -q "^banner porthop-demo service on port 3" "$T/bad.out"
wait_until 10 grep -q "^banner porthop-demo service on port 3" "$T/good.out"

# A payload of every printable byte, to see it come back unchanged.
payload=$(printf '%s' {a..z} {A..Z} {0..9} '!#$%&()*+,-./:;<=>?@[]^_{|}~')
for i in $(seq 20); do
	trigger
	echo "shuffle $i $payload" >&7
	echo "shuffle $i $payload" >&8
	wait_until 10 grep -qxF "ok shuffle $i $payload" "$T/bad.out"
	wait_until 10 grep -qxF "ok shuffle $i $payload" "$T/good.out"
done
kill -0 $badpid 2>/dev/null || fail "the bad scanner's connection ended"
kill -0 $goodpid 2>/dev/null || fail "the good scanner's connection ended"
[ "$(redirect_set)" != "" ] || fail "no mapping in force"
exec 7>&- 8>&-
wait $badpid || fail "the bad scanner's echo client failed: $(tail -n 2 "$T/bad.out")"
wait $goodpid || fail "the good scanner's echo client failed: $(tail -n 2 "$T/good.out")"
pass "long-lived connections from bad (via port $redir3) and good survived 20 shuffles, every byte echoed"
[ "$MODE" = template ] && exit 0
read -r gu gt gou got < <(counts 10.0.0.4)
read -r bu bt bou bot < <(counts 10.0.0.3)
echo "packets untracked/tracked: good in $gu/$gt out $gou/$got; bad in $bu/$bt out $bou/$bot"
[ "$bt" -gt 0 ] && [ "$bot" -gt 0 ] && [ "$bu" -eq 0 ] && [ "$bou" -eq 0 ] \
	|| fail "bad's packets must all be tracked (NAT needs it)"
if [ "$MODE" = untracked ]; then
	[ "$gu" -gt 0 ] && [ "$gou" -gt 0 ] && [ "$gt" -eq 0 ] && [ "$got" -eq 0 ] \
		|| fail "untrack_unwatched: good's packets must all bypass connection tracking"
	pass "untrack_unwatched: good's packets untracked both ways, bad's tracked"
else
	[ "$gu" -eq 0 ] && [ "$gou" -eq 0 ] || fail "good's packets untracked without untrack_unwatched"
fi
