# Shared by the attack scripts: the integration library (own network
# namespace, temp dir, clean-up trap), a native configuration with its
# state in $T/state, and helpers comparing the list with the kernel.
# Usage: . tests/integration/hostile_watch/common.sh BUILD_DIR
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

STATE=$T/state
CFG=$T/attack.json
watch_config "$CFG" '{"trusted_addresses": ["10.9.1.0/24"], "untrack_unwatched": true}'

# raw JSON on the control socket (one line), the reply on stdout.
raw() {
	nsx python3 - "$T/control.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d: break
    buf += d
print(buf.decode().strip())
PY
}

# the networks in the kernel's maps (address or prefix), sorted, unique.
kernel_nets() {
	nsx nft -j list table inet porthop | jq -r '
		.nftables[] | select(.map) | .map.elem // [] | .[]
		| .[0].concat[0] | if type == "object" then
			"\(.prefix.addr)/\(.prefix.len)" else . end' | sort -u
}

# the networks of `porthop watch list`, plus the configured 10.0.0.3.
list_nets() {
	{ ctl watch list --json | jq -r '.entries[].address'; echo 10.0.0.3; } | sort -u
}

# the list and the kernel agree, or print the difference and return 1.
agree() {
	local d
	d=$(diff <(list_nets) <(kernel_nets)) && return 0
	echo "list (<) vs kernel (>):"; echo "$d"
	return 1
}
