# The fleet's test topology, shared by tests/integration/it_fleet_*.sh and
# bench/fleet.sh; sourced after scripts/lib.sh, with $T, $BUILD and $SRC
# set.  Every node is a network namespace of its own on one bridge, and
# the bridge has a namespace of its own (br_netfilter: a bridge inside a
# protected host's namespace would send the others' traffic through
# porthop's rules).  Addresses in 10.77.0.0/16, which exist only on that
# bridge.
#
#   fleet_net_up PREFIX                 the bridge's namespace
#   fleet_small PREFIX N                the bridge, one Redis primary and
#                                       N hosts' namespaces (P, R set)
#   fleet_show_h1 RC                    on failure, host 1's log and
#                                       stream status (for on_exit)
#   fleet_node NAME ADDR                a namespace on the bridge
#   fleet_redis_primary NS ADDR [ARGS]  redis-server on ADDR:6379
#   fleet_redis_replica NS ADDR PRIMARY
#   fleet_sentinel NS ADDR PRIMARY      a sentinel on ADDR:26379
#   fleet_config FILE GROUP REDIS_JSON  a host's configuration
#   fleet_host_start I NS CONFIG        porthopd, log $T/hI.log, socket
#                                       $T/hI.sock; waits for the stream
#   fleet_ctl I ARGS...                 porthop on host I's socket
#   fleet_list I                        host I's fleet entries, sorted:
#                                       "NET ORIGIN EXPIRES"
#   fleet_snapshot NS ADDR STREAM       the snapshot's live entries, same
#                                       form

FLEET_BR=""
FLEET_MASTER=porthop

# fleet_net_up PREFIX: the bridge, in a namespace of its own.
fleet_net_up() {
	FLEET_PREFIX=$1
	FLEET_BR=$1-br
	ns_new "$FLEET_BR"
	ip -n "$FLEET_BR" link add br0 type bridge
	ip -n "$FLEET_BR" link set br0 up
}

# fleet_small PREFIX N: the bridge, a Redis primary in $P-r on $R
# (10.77.0.2), and N hosts' namespaces $P-hI on 10.77.1.I; P=PREFIX.
fleet_small() {
	local i
	P=$1 R=10.77.0.2
	fleet_net_up "$P"
	fleet_node "$P-r" "$R"
	for i in $(seq 1 "$2"); do fleet_node "$P-h$i" "10.77.1.$i"; done
	fleet_redis_primary "$P-r" "$R"
}

# fleet_show_h1 RC: unless RC is 0, the end of host 1's log and its
# stream's status (a test's on_exit hook).
fleet_show_h1() {
	[ "$1" -eq 0 ] || { tail -n 20 "$T/h1.log"; fleet_ctl 1 status --json | jq .stream; } 2>/dev/null
}

# fleet_node NAME ADDR: namespace NAME with ADDR/16 on the bridge.
fleet_node() {
	local ns=$1 addr=$2 n=${#LIB_NAMESPACES[@]}
	ns_new "$ns"
	ip link add "flv$$x$n" type veth peer name eth0 netns "$ns"
	ip link set "flv$$x$n" netns "$FLEET_BR"
	ip -n "$FLEET_BR" link set "flv$$x$n" master br0 up
	ip -n "$ns" addr add "$addr/16" dev eth0
	ip -n "$ns" link set eth0 up
}

# fleet_redis NS ADDR ARGS...: redis-server on ADDR:6379, its files in
# $T/redis-ADDR; waits until it answers.
fleet_redis() {
	local ns=$1 addr=$2
	shift 2
	mkdir -p "$T/redis-$addr"
	ip netns exec "$ns" redis-server --port 6379 --bind "$addr" \
		--protected-mode no --save '' --appendonly no --daemonize yes \
		--dir "$T/redis-$addr" --pidfile "$T/redis-$addr/pid" \
		--logfile "$T/redis-$addr/log" "$@"
	wait_for 10 "redis-server on $addr" ip netns exec "$ns" redis-cli -h "$addr" ping
}

# Redis 7 delays the first full sync 5 s by default: a quick test would
# kill the primary before its replica has anything.
fleet_redis_primary() {
	local ns=$1 addr=$2
	shift 2
	fleet_redis "$ns" "$addr" --repl-diskless-sync-delay 0 "$@"
}

fleet_redis_replica() {
	fleet_redis "$1" "$2" --replicaof "$3" 6379
}

# fleet_sentinel NS ADDR PRIMARY: monitors PRIMARY as "porthop", quorum
# 2, down after 1 s.
fleet_sentinel() {
	local ns=$1 addr=$2 primary=$3 dir=$T/sentinel-$2
	mkdir -p "$dir"
	cat >"$dir/sentinel.conf" <<EOF
port 26379
bind $addr
protected-mode no
daemonize yes
dir $dir
pidfile $dir/pid
logfile $dir/log
sentinel monitor $FLEET_MASTER $primary 6379 2
sentinel down-after-milliseconds $FLEET_MASTER 1000
sentinel failover-timeout $FLEET_MASTER 10000
sentinel parallel-syncs $FLEET_MASTER 1
EOF
	ip netns exec "$ns" redis-server "$dir/sentinel.conf" --sentinel
	wait_for 10 "sentinel on $addr" ip netns exec "$ns" redis-cli -h "$addr" -p 26379 ping
}

# fleet_sentinel_ready NS ADDR NSENTINELS: the sentinel at ADDR knows a
# replica and the other sentinels (without them a failover aborts:
# -failover-abort-no-good-slave, or no quorum).
fleet_sentinel_ready() {
	local ns=$1 addr=$2 others=$(($3 - 1)) r s
	r=$(ip netns exec "$ns" redis-cli -h "$addr" -p 26379 sentinel replicas "$FLEET_MASTER" | grep -c '^flags$' || true)
	s=$(ip netns exec "$ns" redis-cli -h "$addr" -p 26379 sentinel sentinels "$FLEET_MASTER" | grep -c '^flags$' || true)
	[ "$r" -ge 1 ] && [ "$s" -ge "$others" ]
}

# fleet_config FILE GROUP REDIS_JSON [STREAM_JSON]: a native host
# watching 10.0.0.3 with TCP 22, 80, 443; its state in $T/state-GROUP;
# REDIS_JSON merged into redis_connection_configuration, STREAM_JSON
# into redis_stream_configuration.
fleet_config() {
	jq -n --arg g "$2" --arg state "$T/state-$2" \
		--argjson redis "$3" --argjson stream "${4:-{\}}" '{
		redis_connection_configuration: ({host: "127.0.0.1", port: 6379,
			db: 0, charset: "utf-8", decode_responses: true} + $redis),
		redis_subscriber_configuration: {subscriber_channel_names: ["c"]},
		redis_stream_configuration: ({stream: "porthop:feed", group: $g}
			+ $stream),
		nftables_service_configuration: {max_port_number: 60000,
			tcp_ports: [22, 80, 443], untrack_unwatched: false,
			watched_addresses: [{ip: "10.0.0.3"}]},
		porthopd: {reconcile_interval_seconds: 0, state_directory: $state,
			max_runtime_entries: 200000}}' >"$1"
}

# fleet_host_spawn I NS CONFIG [ARGS...]: porthopd for host I.
fleet_host_spawn() {
	local i=$1 ns=$2 cfg=$3
	shift 3
	LOG=$T/h$i.log porthopd_spawn "$ns" -c "$cfg" -s "$T/h$i.sock" "$@"
	echo "$PORTHOPD_PID" >"$T/h$i.pid"
}

# fleet_host_start I NS CONFIG [ARGS...]: spawned, and following the
# stream (a minute at most).
fleet_host_start() {
	local i=$1 n
	n=$(LOG=$T/h$i.log log_count "fleet: stream .*group")
	fleet_host_spawn "$@"
	LOG=$T/h$i.log WAIT_PID=$PORTHOPD_PID wait_log "fleet: stream .*group" $((n + 1)) 60
}

fleet_host_pid() {
	cat "$T/h$1.pid"
}

# fleet_ctl I ARGS...: porthop ARGS against host I (any namespace: the
# socket is a file).
fleet_ctl() {
	local i=$1 cmd=$2
	shift 2
	"$BUILD/porthop" "$cmd" -s "$T/h$i.sock" "$@"
}

# fleet_list I: host I's fleet entries, "NET ORIGIN EXPIRES", sorted
# (origin without "fleet."; 0: no expiry).
fleet_list() {
	fleet_ctl "$1" watch list --json | jq -r '.entries[]
		| select(.origin | startswith("fleet."))
		| "\(.address) \(.origin[6:]) \(.expires // 0)"' | sort
}

# fleet_snapshot NS ADDR [STREAM]: the snapshot's live entries, same form.
fleet_snapshot() {
	local now
	now=$(date +%s)
	ip netns exec "$1" redis-cli -h "$2" --json hgetall "${3:-porthop:feed}:snapshot" |
		jq -r --argjson now "$now" 'to_entries[] | .key as $n
			| .value | fromjson | to_entries[]
			| select(.value == 0 or .value > $now)
			| "\($n) \(.key) \(.value)"' | sort
}

# fleet_stream_field I FIELD: a field of host I's status .stream.
fleet_stream_field() {
	fleet_ctl "$1" status --json | jq -r ".stream.$2"
}

# fleet_caught_up I: host I has read and acknowledged everything.
fleet_caught_up() {
	[ "$(fleet_stream_field "$1" state)" = up ] &&
		[ "$(fleet_stream_field "$1" lag)" = 0 ] &&
		[ "$(fleet_stream_field "$1" pending)" = 0 ]
}
