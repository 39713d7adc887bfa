#!/usr/bin/env bash
# What validating hostile configurations costs (`porthop check -o`, no
# kernel), beside its floor measured in the same run: parsing the same
# file as JSON at all (`jq empty`), which any validator pays.
#   dups      N identical watched entries (each repeat reported)
#   ignore    three entries ignoring 60,000 of 60,000 ports, one repeated
#   capacity  30,000 ports below max_port_number 1
# The checks were quadratic before (200,000 dups: 14.5 s).
#
# usage: bench/validation.sh [BUILD_DIR] [N]   (N default 200000)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
N=${2:-200000}
require_tools jq
bench_tmp porthop-validation

config_head() {
	printf '{"redis_connection_configuration": {"host": "h", "port": 6379, "db": 0, "charset": "utf-8", "decode_responses": true}, "redis_subscriber_configuration": {"subscriber_channel_names": ["c"]}, "nftables_service_configuration": {"max_port_number": %s, "tcp_ports": ' "$1"
}
ports() { seq -s, 1 "$1" | sed 's/^/[/; s/$/]/'; }

{ config_head 100; printf '[22], "watched_addresses": ['
  for i in $(seq "$N"); do printf '%s{"ip": "10.0.0.3"}' "$([ "$i" -gt 1 ] && echo ,)"; done
  printf ']}}\n'; } >"$T/dups.json"
{ config_head 65535; ports 60000; printf ', "watched_addresses": [{"ip": "10.0.0.3", "tcp_ignore": '
  ports 60000; printf '}, {"ip": "10.0.0.4", "tcp_ignore": '; ports 60000
  printf '}, {"ip": "10.0.0.3"}]}}\n'; } >"$T/ignore.json"
{ config_head 1; ports 30000; printf ', "watched_addresses": [{"ip": "10.0.0.3"}]}}\n'; } >"$T/capacity.json"

# seconds CMD...: wall-clock seconds of one run (a refusal is expected).
seconds() {
	local t0
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1 || true
	awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}

printf '%-10s %12s %12s %10s\n' file "porthop check" "floor (jq)" "x floor"
for f in dups ignore capacity; do
	c=$(seconds "$BUILD/porthop" check -o -c "$T/$f.json")
	j=$(seconds jq empty "$T/$f.json")
	printf '%-10s %11ss %11ss %9sx\n' "$f" "$c" "$j" \
		"$(awk -v c="$c" -v j="$j" 'BEGIN { printf "%.2f", c / j }')"
done
