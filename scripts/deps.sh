#!/usr/bin/env bash
# Installs what porthop needs to build, test and run its demo on Debian 12.
# Safe to run again: apt-get skips what is already installed.
set -euo pipefail
PACKAGES=(
	build-essential cmake pkg-config
	libnftables-dev libnftnl-dev libmnl-dev libjansson-dev libhiredis-dev
	libevent-dev libsodium-dev libcurl4-openssl-dev libnetfilter-log-dev
	libcmocka-dev
	nftables iproute2 redis-server redis-tools nmap jq iptables hping3
	valgrind clang libclang-rt-14-dev systemd socat util-linux mandoc
	debhelper dpkg-dev lintian fakeroot git
	procps psmisc
	crowdsec
	fail2ban sshguard
	openssh-server openssh-client
)
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: run as root (apt-get install)" >&2
	exit 77
fi
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# crowdsec 1.4.6's post-install step registers with CrowdSec's Central
# API; without internet it fails and leaves the package half-configured
# (and every later apt-get install failing).  A non-empty credentials file
# makes it skip the registration and set up its offline hub.  Only when
# the package is to be installed: an installed crowdsec's file is never
# touched.
if [[ " ${missing[*]:-} " == *" crowdsec "* ]] &&
   [ ! -s /etc/crowdsec/online_api_credentials.yaml ]; then
	mkdir -p /etc/crowdsec
	echo '# porthop deps.sh: no Central API (offline machine)' \
		>/etc/crowdsec/online_api_credentials.yaml
fi
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
# The packaged crowdsec starts a system Local API where systemd runs; the
# tests start their own, on a copy of the configuration inside a network
# namespace.  Without systemd the package starts nothing; a crowdsec left
# running (an older run of this script, a policy-rc.d that let it start)
# holds 127.0.0.1:8080 and the system database: stop the service, or the
# one process started from the system configuration, by its pid.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl disable --now crowdsec.service >/dev/null 2>&1 || true
fi
if pid=$(pgrep -x -f '/usr/bin/crowdsec -c /etc/crowdsec/config.yaml' 2>/dev/null); then
	for p in $pid; do kill "$p" 2>/dev/null || true; done
fi
