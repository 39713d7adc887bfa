#!/usr/bin/env bash
# fail2ban's porthop action puts <ip> on the command line unquoted and
# without "--".  fail2ban moves a value holding shell metacharacters into
# a variable (no command injection), but a value without them (a jail
# with usedns = raw, or a filter whose <F-ID> stands for the ip) is pasted
# as is: "-f/path" makes the CLI read a file of root's choosing... of the
# attacker's choosing, as a feed (here a "secret" file whose first line
# porthopd then quotes back in its refusal, which fail2ban logs), and a
# value with a space is two arguments.  Expected: one argument, never an
# option (-- "<ip>").
. "$(dirname "$0")/common.sh"
start_redis
start_porthopd "$CFG"
mkdir -p "$T/f2b/action.d"
cp "$SRC/adapters/fail2ban/porthop.conf" "$T/f2b/action.d/"
echo 'root:$y$j9T$SECRETHASH:19000:0:99999:7:::' >"$T/secret"
# an attacker-written feed: the admin's network, watched on a ban
printf '198.51.100.0/24\n203.0.113.0/24\n' >"$T/evil.feed"
run_ban() {	# IP: actionban through fail2ban's own substitution, run by sh
	/usr/bin/python3 - "$T/f2b" "$T/control.sock" "$PORTHOP" "$1" <<'PY' >"$T/cmd"
import sys
from fail2ban.client.actionreader import ActionReader
from fail2ban.server.action import CommandAction
base, sock, porthop, ip = sys.argv[1:]
r = ActionReader("porthop", "sshd", {"socket": sock, "porthop": porthop},
                 share_config={}, basedir=base)
r.read(); r.getOptions({})
opts = dict(r.convert()[1][4])
props = dict(opts); props["bantime"] = "600"
cmd = CommandAction.replaceTag(opts["actionban"], props)
print(CommandAction.replaceDynamicTags(cmd, {"ip": ip}))
PY
	nsx sh -c "$(cat "$T/cmd")" 2>&1 || true
}
bad=0
echo "--- <ip> = -f$T/secret"
out=$(run_ban "-f$T/secret"); echo "$out"
echo "$out" | grep -q SECRETHASH && { echo ">> a file's content in fail2ban's log"; bad=1; }
echo "--- <ip> = -f$T/evil.feed"
run_ban "-f$T/evil.feed"
ctl watch list --origin f2b-sshd --json | jq -e '.entries | length > 0' >/dev/null &&
	{ echo ">> networks of an attacker's file watched: $(ctl watch list --origin f2b-sshd --json | jq -c '[.entries[].address]')"; bad=1; }
echo "--- <ip> = '192.0.2.8 192.0.2.9'"
run_ban "192.0.2.8 192.0.2.9"
ctl watch list --origin f2b-sshd --json | jq -e '[.entries[].address] | index("192.0.2.9")' >/dev/null &&
	{ echo ">> one ban, two addresses"; bad=1; }
echo "--- <ip> = 192.0.2.10 (a plain ban still works)"
run_ban 192.0.2.10
ctl watch list --origin f2b-sshd --json | jq -e '[.entries[].address] | index("192.0.2.10")' >/dev/null ||
	{ echo ">> a plain ban was not applied"; bad=1; }
[ $bad -eq 0 ] || fail "fail2ban's <ip> reaches porthop's options"
pass "<ip> is one argument"
