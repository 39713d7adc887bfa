#!/usr/bin/env bash
# Installs what porthop needs to build, test and run its demo on Debian 12.
# Safe to run again: apt-get skips what is already installed.
set -euo pipefail
PACKAGES=(
	build-essential cmake pkg-config
	libnftables-dev libnftnl-dev libmnl-dev libjansson-dev libhiredis-dev
	libevent-dev libsodium-dev
	libcmocka-dev
	nftables iproute2 redis-server redis-tools nmap jq iptables
	valgrind clang libclang-rt-14-dev systemd socat util-linux mandoc
	debhelper dpkg-dev lintian fakeroot git
	procps psmisc
	fail2ban sshguard
)
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: run as root (apt-get install)" >&2
	exit 77
fi
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# fail2ban's and sshguard's packages start their service on install
	# (invoke-rc.d, deb-systemd-invoke) with the system's configuration,
	# which bans through the host's firewall.  The tests run their own
	# instances in namespaces and need neither: unless a policy already
	# decides (containers ship one that denies every start), a policy
	# that denies starts is in place while apt-get runs.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# deps.sh: no service starts during its apt-get\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged redis-server starts a system instance on 127.0.0.1:6379;
# the tests start their own inside namespaces and need none of it.
