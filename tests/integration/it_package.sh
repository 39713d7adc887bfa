#!/usr/bin/env bash
# The Debian package: built from debian/ with dpkg-buildpackage, lintian
# clean of errors, installed on this machine, its example configuration
# checked by the installed porthopd (inside a network namespace), then
# purged again.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/scripts/lib.sh"
require_root "dpkg -i"
require_tools dpkg-buildpackage lintian git
if dpkg-query -W -f='${Status}' porthop 2>/dev/null | grep -q "ok installed"; then
	fail "a porthop package is installed already; this test would replace it"
fi
tmp_dir porthop-pkg
installed=0
purge() {
	[ $installed = 0 ] || dpkg --purge porthop >/dev/null 2>&1
}
on_exit purge

# Build from the tracked files only, as a release would.
mkdir "$T/src"
(cd "$SRC" && git ls-files -z | xargs -0 cp --parents -t "$T/src")
(cd "$T/src" && dpkg-buildpackage -b -us -uc >"$T/build.log" 2>&1) \
	|| { tail -n 30 "$T/build.log"; fail "dpkg-buildpackage"; }
deb=$(ls "$T"/porthop_*_*.deb)
pass "built $(basename "$deb")"

lintian --fail-on error --allow-root "$deb" >"$T/lintian.log" 2>&1 \
	|| { cat "$T/lintian.log"; fail "lintian reports errors"; }
pass "lintian: no errors ($(grep -c '^W:' "$T/lintian.log" || true) warnings)"

dpkg -i "$deb" >/dev/null
installed=1
for f in /usr/sbin/porthopd /usr/bin/porthop /etc/porthop/configuration.json \
	 /lib/systemd/system/porthopd.service /usr/share/man/man8/porthopd.8.gz \
	 /usr/share/man/man1/porthop.1.gz /usr/share/man/man5/porthop.json.5.gz \
	 /usr/share/porthop/configuration_schema.json \
	 /usr/libexec/porthop/porthop-sshguard /etc/fail2ban/action.d/porthop.conf \
	 /usr/share/man/man8/porthop-sshguard.8.gz; do
	[ -e "$f" ] || fail "$f is not installed"
done
dpkg-query -W -f='${Conffiles}\n' porthop | grep -q /etc/porthop/configuration.json \
	|| fail "the configuration is not a conffile"
dpkg-query -W -f='${Conffiles}\n' porthop | grep -q /etc/fail2ban/action.d/porthop.conf \
	|| fail "fail2ban's action is not a conffile"
# The example configuration, checked by the installed daemon, kernel dry
# run included, in a namespace of its own.
(cd /etc/porthop && unshare -n /usr/sbin/porthopd -n -c /etc/porthop/configuration.json) \
	|| fail "porthopd -n refuses the installed example configuration"
porthop check -o -c /etc/porthop/configuration.json >/dev/null || fail "porthop check"
[ -L /etc/systemd/system/multi-user.target.wants/porthopd.service ] \
	&& fail "the package enabled porthopd before it was configured"
pass "installed; porthopd -n accepts /etc/porthop/configuration.json; not enabled until configured"
