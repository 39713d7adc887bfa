#!/usr/bin/env bash
# One nmap scan over ports 1-20 from the good and the bad scanner, before
# and after a trigger.  The expected mapping is read from the kernel, never
# written down here.
#
# usage: at_nmap.sh BUILD_DIR SCAN [MODE] [FAMILY]
#   SCAN    sS, sT, sF, sN, sX, or sU (native mode only)
#   MODE    template (the reference's rule files, default), native
#           (untrack_unwatched "auto": unwatched clients untracked), or
#           native-tracked (untrack_unwatched false: every client tracked)
#   FAMILY  4 (default) or 6: scan the host's IPv6 address from the
#           scanners' IPv6 addresses (native mode only)
SCAN=${2:?scan type}
MODE=${3:-template}
FAMILY=${4:-4}
. "$(dirname "$0")/lib.sh"
case $SCAN in
sS|sT|sU) STATE=open ;;
sF|sN|sX) STATE="open|filtered" ;;
*) fail "unknown scan type $SCAN" ;;
esac
PROTO=tcp
[ "$SCAN" = sU ] && PROTO=udp
if [ "$FAMILY" = 6 ]; then
	TARGET=${TOPO_ADDR6[host]}
	BAD=${TOPO_ADDR6[bad]}
else
	TARGET=${TOPO_ADDR[host]}
	BAD=${TOPO_ADDR[bad]}
fi
LABEL="-$SCAN ($MODE mode, IPv$FAMILY)"

# ports_seen FROM: the ports the scan shows in $STATE, and fail if any port
# shows another non-closed state.
ports_seen() {
	local out
	out=$(topo_scan "$P" "$1" "$SCAN" "$TARGET")
	echo "$out" | awk -v s="$STATE" 'NF && $2 != s {print "unexpected state: " $0; exit 1}' >&2 \
		|| fail "$1 saw a state other than $STATE: $out"
	echo "$out" | awk 'NF {print $1}' | sort -n | tr '\n' ' '
}

good_want="1 2 3 4 5 "
check_round() {
	local good bad want
	want=$( (printf "1\n2\n"; topo_redirects "$P" "$BAD" $PROTO | awk '{print $2}') | sort -n | tr '\n' ' ')
	[ "$(echo "$want" | wc -w)" -eq 5 ] || fail "$LABEL: no mapping in force for $BAD/$PROTO: [$want]"
	good=$(ports_seen good)
	bad=$(ports_seen bad)
	[ "$good" = "$good_want" ] || fail "$LABEL: good saw [$good], expected [$good_want]"
	[ "$bad" = "$want" ] || fail "$LABEL: bad saw [$bad], expected [$want] (1, 2 and the redirects in force)"
	for p in 3 4 5; do
		case " $bad" in *" $p "*) fail "$LABEL: bad saw real port $p" ;; esac
	done
	echo "$bad"
}

before=$(check_round)
pass "$LABEL before a trigger: good sees [$good_want], bad sees [$before]"

# After a trigger the bad scanner's view follows the new mapping.  One draw
# in 455 repeats the same three ports: then trigger again, as a user would.
old=$(redirect_set "$BAD" $PROTO)
for attempt in 1 2 3 4 5; do
	trigger
	[ "$(redirect_set "$BAD" $PROTO)" != "$old" ] && break
done
[ "$(redirect_set "$BAD" $PROTO)" != "$old" ] || fail "5 triggers never changed the redirect set"
after=$(check_round)
[ "$after" != "$before" ] || fail "$LABEL: bad saw the same ports after the mapping changed"
pass "$LABEL after a trigger: good still sees [$good_want], bad now sees [$after]"
