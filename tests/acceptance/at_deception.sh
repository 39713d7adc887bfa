#!/usr/bin/env bash
# Deception that cannot be told apart (native mode): what the watched
# scanner sees of the protected host must be identical, port by port, to
# what it sees of a plain control host whose services really listen on the
# moved ports.  Every nmap TCP scan type, a set of --scanflags
# combinations, and UDP, over IPv4 and IPv6.
MODE=native
. "$(dirname "$0")/lib.sh"

CTL4=10.0.0.6
CTL6=fd00:70:68::6
topo_add_host "$P" ctl "$CTL4" "$CTL6"

# The control host listens where the protected host's services appear to
# the bad scanner: 1 and 2 (ignored), and the current redirect ports.
ctl_ports() {
	local ports=(1 2) real redir
	while read -r real redir; do ports+=("$redir"); done < <(topo_redirects "$P" "$1" tcp)
	ports+=(u:1 u:2)
	while read -r real redir; do ports+=("u:$redir"); done < <(topo_redirects "$P" "$1" udp)
	echo "${ports[@]}"
}
ip netns exec "${P}ctl" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
# IPv4 and IPv6 mappings differ: the control host mirrors the IPv4 one,
# and is restarted with the IPv6 one below.
ip netns exec "${P}ctl" "$BUILD/phsvc" serve -6 $(ctl_ports 10.0.0.3) &
ctl=$!
wait_until 10 ip netns exec "${P}bad" bash -c "exec 3<>/dev/tcp/$CTL4/1"

SCANS=(
	sS sT sF sN sX sA sW sM
	"sS --scanflags PSH" "sS --scanflags URG" "sS --scanflags FINPSH"
	"sS --scanflags SYNFIN" "sS --scanflags FINURG" "sS --scanflags ACKPSH"
	"sS --scanflags SYNACK" "sS --scanflags RST" "sS --scanflags SYNRST"
	"sS --scanflags ECE" "sS --scanflags SYNECECWR" "sS --scanflags URGACKPSHRSTSYNFIN"
	"sA --scanflags FINACK" "sU"
)

compare() {  # SCAN PROTECTED CONTROL
	local a b
	a=$(topo_scan_raw "$P" bad "$1" "$2")
	b=$(topo_scan_raw "$P" bad "$1" "$3")
	[ -n "$a" ] || fail "-$1: no result scanning $2"
	if [ "$a" != "$b" ]; then
		echo "protected host $2:"; echo "$a"
		echo "control host $3:"; echo "$b"
		fail "-$1: the protected host and the control host look different"
	fi
	pass "-$1 against $2 and $3: identical ($(echo "$a" | tr '\n' ';'))"
}

n=0
for scan in "${SCANS[@]}"; do
	compare "$scan" 10.0.0.2 "$CTL4"
	n=$((n + 1))
done

kill $ctl; wait $ctl 2>/dev/null || true
ip netns exec "${P}ctl" "$BUILD/phsvc" serve -6 $(ctl_ports "${TOPO_ADDR6[bad]}") &
wait_until 10 ip netns exec "${P}bad" bash -c "exec 3<>/dev/tcp/$CTL6/1"
for scan in sS sT sF sN sX sA sM "sS --scanflags SYNFIN" "sS --scanflags PSH" sU; do
	compare "$scan" "${TOPO_ADDR6[host]}" "$CTL6"
	n=$((n + 1))
done
pass "$n scans: the watched scanner cannot tell the protected host from a plain one"
