# The demo's network, built from network namespaces (sourced by
# scripts/demo.sh, the acceptance tests and bench/connrate.sh, after
# scripts/lib.sh: the namespaces go at exit, with every process in them).
#
#   ${P}host  10.0.0.2  fd00:ph::2   the protected host: services on 1-5,
#                                    redis-server on 127.0.0.1, porthopd
#   ${P}bad   10.0.0.3  fd00:ph::3   the scanner whose address is watched
#   ${P}good  10.0.0.4  fd00:ph::4   a scanner that is not watched
#   ${P}br                           the bridge joining them, in a
#                                    namespace of its own so that bridged
#                                    traffic never passes porthop's rules
#
# Every address lives only inside these namespaces.

TOPO_HOSTS=(host bad good)
declare -A TOPO_ADDR=([host]=10.0.0.2 [bad]=10.0.0.3 [good]=10.0.0.4)
declare -A TOPO_ADDR6=([host]=fd00:70:68::2 [bad]=fd00:70:68::3 [good]=fd00:70:68::4)

# topo_up PREFIX: creates the namespaces and links.
topo_up() {
	P=$1
	ns_new "${P}br"
	ip -n "${P}br" link add br0 type bridge
	ip -n "${P}br" link set br0 up
	for h in "${TOPO_HOSTS[@]}"; do
		topo_add_host "$P" "$h" "${TOPO_ADDR[$h]}" "${TOPO_ADDR6[$h]}"
	done
}

# topo_add_host PREFIX NAME ADDR ADDR6: one more host on the bridge.
topo_add_host() {
	local P=$1 h=$2
	ns_new "${P}$h"
	ip link add "ph$$$h" netns "${P}$h" type veth peer name "$h" netns "${P}br"
	ip -n "${P}$h" link set "ph$$$h" name eth0
	ip -n "${P}br" link set "$h" master br0 up
	ip -n "${P}$h" addr add "$3/24" dev eth0
	ip -n "${P}$h" addr add "$4/64" dev eth0 nodad
	ip -n "${P}$h" link set eth0 up
}

# topo_porthopd PREFIX CONFIG: Redis and porthopd (its control socket
# $T/control.sock, its log $LOG) on the protected host; waits until it has
# subscribed.
topo_porthopd() {
	redis_start "${1}host"
	porthopd_start "${1}host" -c "$2" -s "$T/control.sock"
}

# topo_trigger PREFIX CONFIG: publishes one signed trigger from the
# protected host and waits for the shuffle it causes.
topo_trigger() {
	local n
	n=$(log_count "applied")
	ip netns exec "${1}host" "$BUILD/porthop" publish -q -c "$2"
	wait_log "applied" $((n + 1)) 20
}

# topo_config FILE SRC_DIR: the demo's configuration (the reference's
# values: 10.0.0.3 watched, ignoring 1 and 2; services on 1-5; max 20).
topo_config() {
	cat >"$1" <<JSON
{
  "redis_connection_configuration": {
    "host": "127.0.0.1", "port": 6379, "db": 0,
    "charset": "utf-8", "decode_responses": true
  },
  "redis_subscriber_configuration": {
    "subscriber_channel_names": ["test_channel_1"]
  },
  "nftables_service_configuration": {
    "nft_startup_commands_path": "$2/examples/nft_startup_commands.json",
    "nft_address_rules_path": "$2/examples/nft_address_rules.json",
    "max_port_number": 20,
    "tcp_ports": [1, 2, 3, 4, 5],
    "watched_addresses": [ { "ip": "10.0.0.3", "tcp_ignore": [1, 2] } ]
  }
}
JSON
}

# topo_config_native FILE: the same in native mode: porthop's own table,
# TCP and UDP services on 1-5, the bad scanner watched by its IPv4 and its
# IPv6 address.
topo_config_native() {
	cat >"$1" <<JSON
{
  "redis_connection_configuration": {
    "host": "127.0.0.1", "port": 6379, "db": 0,
    "charset": "utf-8", "decode_responses": true
  },
  "redis_subscriber_configuration": {
    "subscriber_channel_names": ["test_channel_1"]
  },
  "nftables_service_configuration": {
    "max_port_number": 20,
    "tcp_ports": [1, 2, 3, 4, 5],
    "udp_ports": [1, 2, 3, 4, 5],
    "watched_addresses": [
      { "ip": "10.0.0.3", "tcp_ignore": [1, 2], "udp_ignore": [1, 2] },
      { "ip": "${TOPO_ADDR6[bad]}", "tcp_ignore": [1, 2], "udp_ignore": [1, 2] }
    ]
  },
  "porthopd": { "reconcile_interval_seconds": 1, "state_directory": "" }
}
JSON
}

# topo_services PREFIX PHSVC: the protected host's TCP and UDP services on
# ports 1-5, IPv4 and IPv6.  ICMP errors are not rate-limited there, so
# UDP scans see every closed port.
topo_services() {
	ip netns exec "${1}host" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
	ip netns exec "${1}host" "$2" serve -6 1 2 3 4 5 u:1 u:2 u:3 u:4 u:5 &
}

# topo_scan PREFIX FROM TYPE TARGET: nmap over ports 1-20; prints
# "port state" for every port that is not closed.  TYPE is an nmap scan
# option without its dash (sS, sU, ...), optionally followed by more
# options ("sS --scanflags PSH"); an IPv6 TARGET scans with -6.
topo_scan() {
	local six=()
	case $4 in *:*) six=(-6) ;; esac
	# shellcheck disable=SC2086
	ip netns exec "${1}$2" nmap "${six[@]}" -$3 -p1-20 -n -Pn -T5 --max-retries 2 \
		--host-timeout 60s --reason -oG - "$4" 2>/dev/null \
	| awk -F'Ports: ' '/Ports:/ {
		n = split($2, p, ", ")
		for (i = 1; i <= n; i++) {
			split(p[i], f, "/")
			sub(/^ +/, "", f[1])
			if (f[2] != "closed") print f[1], f[2]
		}
	}' | sort -n
}

# topo_scan_raw PREFIX FROM OPTIONS TARGET: nmap over ports 1-20, printing
# the whole verdict: every listed port with its state, and the state of
# the ports nmap folds together ("Ignored State").  Two hosts that look the
# same to a scanner print the same lines.
topo_scan_raw() {
	local six=()
	case $4 in *:*) six=(-6) ;; esac
	# shellcheck disable=SC2086
	ip netns exec "${1}$2" nmap "${six[@]}" -$3 -p1-20 -n -Pn -T5 --max-retries 2 \
		--host-timeout 60s -oG - "$4" 2>/dev/null \
	| awk -F'\t' '/Ports:/ {
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^Ports: /) {
				sub(/^Ports: /, "", $i)
				n = split($i, p, ", ")
				for (j = 1; j <= n; j++) { split(p[j], f, "/"); print f[1], f[2], f[3] }
			}
			if ($i ~ /^Ignored State: /) print $i
		}
	}'
}

# topo_redirects PREFIX ADDRESS [PROTO]: "real redirect" pairs in force for
# ADDRESS (services 1-5), read from the kernel: the template's nat rules,
# or native mode's maps.
topo_redirects() {
	ip netns exec "${1}host" nft -j list ruleset | jq -r --arg a "$2" --arg p "${3:-tcp}" '
		(.nftables[] | select(.rule and .rule.table == "nat") | .rule.expr
		 | select(.[0].match.right == $a and .[1].match.right <= 5)
		 | "\(.[1].match.right) \(.[2].redirect.port)"),
		(.nftables[] | select(.map and .map.table == "porthop") | .map.elem // []
		 | .[] | select(.[0].concat[0] == $a and .[0].concat[1] == $p
				and .[0].concat[2] <= 5)
		 | "\(.[0].concat[2]) \(.[1])")' | sort -n
}
