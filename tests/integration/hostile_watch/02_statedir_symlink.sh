#!/usr/bin/env bash
# state_directory that already exists and belongs to someone else (here
# nobody, 0755): porthopd takes it as is (no owner or mode check) and
# opens runtime.state.tmp with O_CREAT|O_TRUNC, following a symlink
# planted there: root truncates and overwrites any file (here $T/victim,
# standing for /etc/shadow), and later appends go to it through the
# renamed link.
. "$(dirname "$0")/common.sh"
chmod 755 "$T"
mkdir -p "$STATE"
echo "precious root-only data" >"$T/victim"
chmod 600 "$T/victim"
chown nobody "$STATE"
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	ln -s "$T/victim" "$STATE/runtime.state.tmp"
start_redis
start_porthopd "$CFG"
ctl watch add 192.0.2.7 >/dev/null
echo "--- victim now:"; cat "$T/victim"; ls -l "$STATE"
grep -q precious "$T/victim" || fail "porthopd (root) overwrote a file through a symlink in its state directory"
pass "symlink not followed"
