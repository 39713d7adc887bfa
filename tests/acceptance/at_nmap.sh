#!/usr/bin/env bash
# One nmap scan type (argument 2: sS, sT, sF, sN or sX) over ports 1-20
# from the good and the bad scanner, before and after a trigger.  The
# expected mapping is read from the kernel, never written down here.
. "$(dirname "$0")/lib.sh"
SCAN=${2:?scan type}
case $SCAN in
sS|sT) STATE=open ;;
sF|sN|sX) STATE="open|filtered" ;;
*) fail "unknown scan type $SCAN" ;;
esac

# ports_seen FROM: the ports the scan shows in $STATE, and fail if any port
# shows another non-closed state.
ports_seen() {
	local out
	out=$(topo_scan "$P" "$1" "$SCAN" 10.0.0.2)
	echo "$out" | awk -v s="$STATE" 'NF && $2 != s {print "unexpected state: " $0; exit 1}' >&2 \
		|| fail "$1 saw a state other than $STATE: $out"
	echo "$out" | awk 'NF {print $1}' | sort -n | tr '\n' ' '
}

good_want="1 2 3 4 5 "
check_round() {
	local good bad want
	want=$( (printf "1\n2\n"; topo_redirects "$P" 10.0.0.3 | awk '{print $2}') | sort -n | tr '\n' ' ')
	good=$(ports_seen good)
	bad=$(ports_seen bad)
	[ "$good" = "$good_want" ] || fail "-$SCAN: good saw [$good], expected [$good_want]"
	[ "$bad" = "$want" ] || fail "-$SCAN: bad saw [$bad], expected [$want] (1, 2 and the redirects in force)"
	for p in 3 4 5; do
		case " $bad" in *" $p "*) fail "-$SCAN: bad saw real port $p" ;; esac
	done
	echo "$bad"
}

before=$(check_round)
pass "-$SCAN before a trigger: good sees [$good_want], bad sees [$before]"

# After a trigger the bad scanner's view follows the new mapping.  One draw
# in 455 repeats the same three ports: then trigger again, as a user would.
old=$(redirect_set)
for attempt in 1 2 3 4 5; do
	trigger
	[ "$(redirect_set)" != "$old" ] && break
done
[ "$(redirect_set)" != "$old" ] || fail "5 triggers never changed the redirect set"
after=$(check_round)
[ "$after" != "$before" ] || fail "-$SCAN: bad saw the same ports after the mapping changed"
pass "-$SCAN after a trigger: good still sees [$good_want], bad now sees [$after]"
