#!/usr/bin/env bash
# Real traffic: the bad scanner reaches each real service through its
# moved port (the banner names it), and long-lived connections from bad
# (through a moved port) and from good survive 20 shuffles with every byte
# echoed back intact after each.  MODE native (untrack_unwatched "auto",
# the default, with no other user of conntrack on the host) also checks
# that only the watched client's connections are tracked; native-tracked
# (untrack_unwatched false) tracks every client.
MODE=${2:-template}
. "$(dirname "$0")/lib.sh"

# tracked: the connections the protected host's conntrack holds now.
tracked() { $H cat /proc/sys/net/netfilter/nf_conntrack_count; }

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
if [ "$MODE" = native ]; then
	# good's connections (its long-lived one and ten more) are not
	# tracked; each of bad's through a moved port is, while it lives.
	n0=$(tracked)
	[ "$n0" -ge 1 ] || fail "bad's long-lived connection is not tracked"
	for i in $(seq 10); do
		ip netns exec "${P}good" timeout 5 bash -c "exec 3<>/dev/tcp/10.0.0.2/3; head -n 1 <&3" >/dev/null \
			|| fail "good could not connect to port 3"
	done
	[ "$(tracked)" -eq "$n0" ] || fail "good's connections were tracked ($n0 entries before, $(tracked) after)"
	read -r _ redir3 < <(topo_redirects "$P" 10.0.0.3 | awk '$1 == 3')
	ip netns exec "${P}bad" timeout 5 bash -c "exec 3<>/dev/tcp/10.0.0.2/$redir3; head -n 1 <&3; sleep 1" >/dev/null &
	wait_until 5 bash -c "[ \$($H cat /proc/sys/net/netfilter/nf_conntrack_count) -gt $n0 ]"
	wait $!
	pass "untrack_unwatched \"auto\", alone on the host: good's connections are not tracked, bad's are"
fi
kill -0 $badpid 2>/dev/null || fail "the bad scanner's connection ended"
kill -0 $goodpid 2>/dev/null || fail "the good scanner's connection ended"
[ "$(redirect_set)" != "" ] || fail "no mapping in force"
exec 7>&- 8>&-
wait $badpid || fail "the bad scanner's echo client failed: $(tail -n 2 "$T/bad.out")"
wait $goodpid || fail "the good scanner's echo client failed: $(tail -n 2 "$T/good.out")"
pass "long-lived connections from bad (via port $redir3) and good survived 20 shuffles, every byte echoed"
