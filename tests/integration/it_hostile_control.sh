#!/usr/bin/env bash
# The control socket against hostile or unlucky clients and configurations:
#  1. what is at control_socket is checked before the kernel is touched: a
#     regular file, a directory or a missing directory refuse the start
#     (exit 78) and nothing there is removed;
#  2. a reload keeps the socket when its path and group did not change (the
#     connections on it too), moves it otherwise with every connection of
#     the old one closed (no use after free), also from inside a
#     `porthop reload` on that very socket;
#  3. control_group admits members through a supplementary group, delivers
#     the refusal to others (exit 77, never a reset: 69 or SIGPIPE), every
#     reply ends in an end of file even when the client sent more, and
#     /run/porthop becomes the group's, mode 0750;
#  4. a flood of held connections under a low descriptor limit costs
#     neither CPU nor log lines, root is still answered, a client that
#     trickles one byte a second is cut at the deadline, and accept()
#     failing with EMFILE pauses the listener instead of spinning.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3	# not a shim under /root: it runs as other users too
for tool in $PY setpriv prlimit useradd groupadd nsenter unshare; do
	command -v "$tool" >/dev/null || fail "$tool is not installed"
done

# A group for control_group, another as the user's primary group, and a
# user who is in the first only as a supplementary group; all removed on
# exit, whatever happens.
tag=$$$RANDOM
CG=phctl$tag OG=photh$tag U=phusr$tag
holders=
remove_accounts() {
	# userdel refuses a user with processes: the holders run as U.
	if [ -n "$holders" ]; then
		kill "$holders" 2>/dev/null
		wait "$holders" 2>/dev/null
	fi
	# Retried: another test's useradd may hold the lock on /etc/passwd.
	local i
	for i in $(seq 50); do
		! id "$U" >/dev/null 2>&1 || userdel "$U" 2>/dev/null || true
		! getent group "$CG" >/dev/null || groupdel "$CG" 2>/dev/null || true
		! getent group "$OG" >/dev/null || groupdel "$OG" 2>/dev/null || true
		! id "$U" >/dev/null 2>&1 && ! getent group "$CG" >/dev/null &&
			! getent group "$OG" >/dev/null && return
		sleep 0.1
	done
	echo "WARNING: could not remove $U, $CG, $OG" >&2
}
on_exit remove_accounts
groupadd "$CG"
groupadd "$OG"
useradd -M -N -d /nonexistent -s /usr/sbin/nologin -g "$OG" -G "$CG" "$U"
chmod 755 "$T"	# the test user reaches sockets in it

cat >"$T/client.py" <<'PY'
import os, select, socket, sys, time

def partial(path, first, rest, go):
    # Sends the start of a request, says so, and finishes it once told.
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(first.encode())
    print("sent", flush=True)
    end = time.monotonic() + 30
    while not os.path.exists(go):
        if time.monotonic() > end:
            sys.exit("never told to go on")
        time.sleep(0.02)
    data = b""
    try:
        s.sendall(rest.encode())
        s.settimeout(10)
        while b"\n" not in data:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError as e:
        print("error " + type(e).__name__, flush=True)
        return
    print(data.decode().strip() or "closed", flush=True)

def raw(path, request):
    # Sends the request and reads to the end, as socat would: a reply
    # followed by a reset is a reset.
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(request.encode())
    s.settimeout(10)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except ConnectionResetError:
        print("reset", flush=True)
        return
    print(data.decode().strip(), flush=True)

def holders(path, n):
    # Opens up to n connections in 3 s (retrying while the listener's
    # queue is full), says how many, and holds them without a word until
    # killed.
    held = []
    end = time.monotonic() + 3
    while len(held) < int(n) and time.monotonic() < end:
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(path)
            held.append(s)
        except BlockingIOError:
            s.close()
            time.sleep(0.01)
    print("holding %d" % len(held), flush=True)
    time.sleep(120)

def trickle(path):
    # One byte a second, no newline: how long until porthopd hangs up?
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    start = time.monotonic()
    while time.monotonic() - start < 12:
        try:
            s.send(b" ")
        except OSError:
            break
        r, _, _ = select.select([s], [], [], 1.0)
        if r:
            try:
                if not s.recv(4096):
                    break
            except OSError:
                break
    print("%.1f" % (time.monotonic() - start), flush=True)

globals()[sys.argv[1]](*sys.argv[2:])
PY

# start_own CONFIG SOCKET [WRAPPER...]: porthopd with the control socket its
# configuration names (no -s: a reload may move it), under WRAPPER (prlimit,
# unshare...) if given.
start_own() {
	local cfg=$1 sock=$2
	shift 2
	local PORTHOPD_WRAP=("$@" "${VALGRIND[@]}")
	porthopd_spawn "$NS" -c "$cfg" --no-redis -v
	echo "$PORTHOPD_PID" >"$T/porthopd.pid"
	wait_log "shuffle 1 applied" 1 60
	[ -z "$sock" ] || wait_for 60 "the control socket" test -S "$sock"
}
restart_log() { : >"$T/porthopd.log"; }
with_socket() { jq --arg s "$2" '.porthopd.control_socket = $s' "$1"; }
PH() { local s=$1; shift; nsx "$PORTHOP" "$@" -s "$s"; }

write_config "$T/base.json" 60000 '[{"ip": "10.0.0.3"}]'
cfg=$T/configuration.json

# 1. What is at the path is checked before the kernel is touched.
printf 'not yours\n' >"$T/file.sock"
mkdir "$T/dir.sock"
for case in "file.sock| exists and is not a socket (a regular file)" \
	    "dir.sock| exists and is not a socket (a directory)" \
	    "missing/x.sock|: its directory does not exist"; do
	bad=${case%%|*} why=${case#*|}
	with_socket "$T/base.json" "$T/$bad" >"$T/bad.json"
	rc=0; out=$(nsx "${VALGRIND[@]}" "$PORTHOPD" -n -c "$T/bad.json" 2>&1) || rc=$?
	[ $rc -eq 78 ] || fail "porthopd -n with $bad: exit $rc, expected 78: $out"
	grep -qF "control socket \"$T/$bad\"$why" <<<"$out" \
		|| fail "porthopd -n does not say what is wrong with $T/$bad: $out"
	rc=0; out=$(nsx timeout 60 "${VALGRIND[@]}" "$PORTHOPD" -c "$T/bad.json" --no-redis 2>&1) || rc=$?
	[ $rc -eq 78 ] || fail "porthopd with $bad: exit $rc, expected 78: $out"
	[ -z "$(nsx nft list tables)" ] || fail "porthopd with $bad touched the kernel: $(nsx nft list tables)"
done
[ "$(cat "$T/file.sock")" = "not yours" ] || fail "the regular file at control_socket was changed"
[ -d "$T/dir.sock" ] || fail "the directory at control_socket was removed"
pass "control_socket: a regular file, a directory, a missing directory: exit 78 before the kernel is touched, nothing removed"

# 2. Reload: the socket kept when unchanged, moved with its connections
#    closed when changed, also from a request on that very socket.
with_socket "$T/base.json" "$T/a.sock" >"$cfg"
start_own "$cfg" "$T/a.sock"
pid=$(cat "$T/porthopd.pid")
partial() { # SOCKET NAME: a held, unfinished status request
	rm -f "$T/$2.go"
	nsx $PY "$T/client.py" partial "$1" '{"command":' '"status"}
' "$T/$2.go" >"$T/$2.out" 2>&1 &
	wait_for 10 "$2 to connect" grep -q '^sent$' "$T/$2.out"
	# Answered after the held one was queued: porthopd has accepted it.
	PH "$1" status >/dev/null || fail "status on $1"
}
ino=$(stat -c %i "$T/a.sock")
partial "$T/a.sock" h1
kill -HUP "$pid"
wait_log "reload applied" 1
touch "$T/h1.go"
wait_for 10 "the held request's answer" grep -qv '^sent$' "$T/h1.out"
porthopd_alive || fail "porthopd died finishing a request held across a reload"
[ "$(sed -n 2p "$T/h1.out" | jq -r .ok)" = true ] || fail "the request held across a reload: $(cat "$T/h1.out")"
[ "$(stat -c %i "$T/a.sock")" = "$ino" ] || fail "an unchanged control_socket was re-created on reload"
pass "reload with the same control_socket keeps the socket and the requests in progress on it"

partial "$T/a.sock" h2
with_socket "$T/base.json" "$T/b.sock" >"$cfg"
kill -HUP "$pid"
wait_log "reload applied" 2
wait_for 10 "the moved socket" test -S "$T/b.sock"
touch "$T/h2.go"
wait_for 10 "the held client to finish" grep -qv '^sent$' "$T/h2.out"
porthopd_alive || fail "porthopd died finishing a request held across a move of the socket"
grep -qE '^(closed|error (BrokenPipeError|ConnectionResetError))$' <(sed -n 2p "$T/h2.out") \
	|| fail "a connection of the old socket outlived it: $(cat "$T/h2.out")"
[ ! -e "$T/a.sock" ] || fail "the old socket file was left"
PH "$T/b.sock" status >/dev/null || fail "status on the moved socket"
pass "reload that moves control_socket: the old socket and its connections closed, the new one answers"

with_socket "$T/base.json" "$T/c.sock" >"$cfg"
out=$(PH "$T/b.sock" reload) || fail "porthop reload that moves the socket it came in on: $out"
grep -q "^reloaded: " <<<"$out" || fail "porthop reload: $out"
porthopd_alive || fail "porthopd died in a reload that moved its own socket"
[ ! -e "$T/b.sock" ] || fail "b.sock left after the move"
ino=$(stat -c %i "$T/c.sock")
PH "$T/c.sock" reload >/dev/null || fail "porthop reload on c.sock"
[ "$(stat -c %i "$T/c.sock")" = "$ino" ] || fail "porthop reload re-created an unchanged socket"
PH "$T/c.sock" status >/dev/null || fail "status after the reloads"
stop_porthopd
[ ! -e "$T/c.sock" ] || fail "the socket file was left after stop"
pass "porthop reload: answered when it moves its own socket; an unchanged socket is kept"

# 3. control_group: supplementary members admitted, refusals delivered.
restart_log
jq --arg s "$T/g.sock" --arg g "$CG" '.porthopd.control_socket = $s | .porthopd.control_group = $g' \
	"$T/base.json" >"$cfg"
start_own "$cfg" "$T/g.sock"
[ "$(stat -c '%a %G' "$T/g.sock")" = "660 $CG" ] || fail "group socket is $(stat -c '%a %G' "$T/g.sock")"
as_member() { nsx setpriv --reuid="$U" --regid="$OG" --init-groups "$@"; }
out=$(as_member "$PORTHOP" status -s "$T/g.sock" 2>&1) || fail "a member by a supplementary group was refused: $out"
nsx setpriv --reuid="$U" --regid="$CG" --clear-groups "$PORTHOP" status -s "$T/g.sock" >/dev/null \
	|| fail "a member by its primary group was refused"
rc=0; out=$(nsx setpriv --reuid=nobody --regid=nogroup --clear-groups "$PORTHOP" status -s "$T/g.sock" 2>&1) || rc=$?
[ $rc -eq 77 ] || fail "a non-member got exit $rc: $out"
# A non-member past the file's permission (CAP_DAC_OVERRIDE) reaches
# porthopd's own check: its refusal must arrive, not a reset.
for i in $(seq 10); do
	rc=0; out=$(nsx setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--inh-caps=+dac_override --ambient-caps=+dac_override \
		"$PORTHOP" status -s "$T/g.sock" 2>&1) || rc=$?
	[ $rc -eq 77 ] || fail "refused non-member, try $i: exit $rc, expected 77: $out"
	grep -qF "permission denied: root or the configured control group only" <<<"$out" \
		|| fail "refused non-member, try $i: $out"
done
# The same with a client that reads to the end and sends more than one
# line: the refusal, then an end of file, not a reset.
for i in $(seq 5); do
	out=$(nsx setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--inh-caps=+dac_override --ambient-caps=+dac_override \
		$PY "$T/client.py" raw "$T/g.sock" "$(printf '{"command":"status"}\n%.0s' $(seq 200))")
	[ "$(jq -r .error <<<"$out" 2>/dev/null)" = "permission denied: root or the configured control group only" ] \
		|| fail "refused raw client, try $i: $out"
done
out=$(nsx $PY "$T/client.py" raw "$T/g.sock" "$(printf '{"command":"status"}\n%.0s' $(seq 200))")
[ "$(jq -r .ok <<<"$out" 2>/dev/null)" = true ] || fail "a request followed by more lines: $out"
[ "$(PH "$T/g.sock" status --json | jq .control.refused_peer)" = 15 ] || fail "refusals not counted"
stop_porthopd
pass "control_group: members by a supplementary group admitted; refusals delivered (exit 77), replies never lost to a reset"

# /run/porthop, the default's directory, given to the group (in a mount
# namespace of porthopd's own, so the host's /run is not touched).
restart_log
jq --arg g "$CG" '.porthopd.control_group = $g' "$T/base.json" >"$cfg"
start_own "$cfg" "" unshare -m --propagation private sh -c \
	'mount -t tmpfs -o mode=755 porthop-run /run && exec "$@"' sh
pid=$(cat "$T/porthopd.pid")
wait_for 60 "/run/porthop/porthopd.sock" nsenter -t "$pid" -m test -S /run/porthop/porthopd.sock
[ "$(nsenter -t "$pid" -m stat -c '%a %U %G' /run/porthop)" = "750 root $CG" ] \
	|| fail "/run/porthop is $(nsenter -t "$pid" -m stat -c '%a %U %G' /run/porthop)"
out=$(nsenter -t "$pid" -m -n setpriv --reuid="$U" --regid="$OG" --init-groups "$PORTHOP" status 2>&1) \
	|| fail "a member cannot use the default socket: $out"
rc=0; nsenter -t "$pid" -m -n setpriv --reuid=nobody --regid=nogroup --clear-groups "$PORTHOP" status >/dev/null 2>&1 || rc=$?
[ $rc -eq 77 ] || fail "a non-member using the default socket: exit $rc"
stop_porthopd
pass "control_group: /run/porthop is the group's, mode 0750; members use the default socket"

# 4. Floods, trickles and EMFILE, with a descriptor limit of 64: at most
#    64/4 = 16 connections, and root has 4 more.
restart_log
jq --arg s "$T/f.sock" --arg g "$CG" '.porthopd.control_socket = $s | .porthopd.control_group = $g' \
	"$T/base.json" >"$cfg"
start_own "$cfg" "$T/f.sock" prlimit --nofile=64:64
pid=$(cat "$T/porthopd.pid")
sock=$T/f.sock
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# watch SECONDS: porthopd must stay alive all along (a measurement window,
# not a wait for an event).
watch() {
	local end=$(( $(date +%s%N) + $1 * 1000000000 ))
	while [ "$(date +%s%N)" -lt "$end" ]; do
		porthopd_alive || fail "porthopd died"
		sleep 0.1
	done
}

out=$(nsx $PY "$T/client.py" trickle "$sock")
awk -v t="$out" 'BEGIN { exit !(t >= 4 && t <= 8) }' || fail "a client trickling a byte a second was cut after ${out}s, expected about 5"
pass "a client that trickles a byte a second is cut at the 5 s deadline (${out}s)"

ip netns exec "$NS" setpriv --reuid="$U" --regid="$CG" --clear-groups $PY "$T/client.py" holders "$sock" 100 >"$T/holders.out" 2>&1 &
holders=$!	# not through nsx: the holder itself
wait_for 10 "the holders" grep -q '^holding' "$T/holders.out"
lines0=$(wc -l <"$T/porthopd.log")
cpu0=$(cpu)
watch 3
cpu1=$(cpu)
# Clock ticks (100 a second): a spinning loop would use about 300.
[ $((cpu1 - cpu0)) -lt 100 ] || fail "porthopd used $((cpu1 - cpu0)) ticks of CPU in 3 s under 100 held connections"
[ $(( $(wc -l <"$T/porthopd.log") - lines0 )) -lt 20 ] || fail "the log grew by $(( $(wc -l <"$T/porthopd.log") - lines0 )) lines: $(tail -n 3 "$T/porthopd.log")"
st=$(nsx timeout 10 "$PORTHOP" status --json -s "$sock") || fail "root's status while the connections are held"
# 16 (13 under valgrind, which keeps 12 descriptors for itself).
[ "$(jq '.control.limit <= 16 and .control.open >= .control.limit' <<<"$st")" = true ] \
	|| fail "connection limit: $(jq -c .control <<<"$st")"
[ "$(jq '.control.refused_busy > 0' <<<"$st")" = true ] || fail "nobody turned away: $(jq -c .control <<<"$st")"
out=$(nsx timeout 10 setpriv --reuid="$U" --regid="$CG" --clear-groups "$PORTHOP" status -s "$sock" 2>&1) \
	&& fail "a member got past the limit: $out"
grep -q "porthopd is busy" <<<"$out" || fail "a member turned away at the limit: $out"
# The held connections are cut at their deadline, whatever the holder does.
wait_for 10 "the held connections to be cut" bash -c \
	"[ \$(ip netns exec $NS $PORTHOP status --json -s $sock | jq .control.open) -le 1 ]"
kill "$holders"
wait "$holders" 2>/dev/null || true
holders=
nsx setpriv --reuid="$U" --regid="$CG" --clear-groups "$PORTHOP" status -s "$sock" >/dev/null \
	|| fail "a member's status after the flood"
pass "100 held connections under nofile 64: $((cpu1 - cpu0)) CPU ticks in 3 s, no log flood, root answered, members turned away with a reply"

# EMFILE: the descriptor table made full from outside (the soft limit
# lowered to the lowest free descriptor).  Clients waiting meanwhile are
# answered one by one through the spare descriptor; no spinning.
free_fd=$(ls "/proc/$pid/fd" | sort -n | awk 'BEGIN { n = 0 } $1 == n { n++ } END { print n }')
prlimit --pid "$pid" --nofile="$free_fd":64
ip netns exec "$NS" $PY "$T/client.py" holders "$sock" 3 >"$T/holders.out" 2>&1 &
holders=$!	# not through nsx: the holder itself
wait_for 10 "the waiting clients" grep -q '^holding' "$T/holders.out"
lines0=$(wc -l <"$T/porthopd.log")
cpu0=$(cpu)
watch 3
cpu1=$(cpu)
[ $((cpu1 - cpu0)) -lt 100 ] || fail "porthopd used $((cpu1 - cpu0)) ticks of CPU in 3 s out of descriptors"
[ $(( $(wc -l <"$T/porthopd.log") - lines0 )) -le 2 ] || fail "the log grew by $(( $(wc -l <"$T/porthopd.log") - lines0 )) lines out of descriptors"
grep -q "control socket: accept: Too many open files" "$T/porthopd.log" || fail "EMFILE not logged"
out=$(nsx timeout 10 "$PORTHOP" status -s "$sock" 2>&1) && fail "status out of descriptors: $out"
grep -q "porthopd is out of file descriptors" <<<"$out" || fail "out of descriptors, a client got: $out"
kill "$holders"
wait "$holders" 2>/dev/null || true
holders=
prlimit --pid "$pid" --nofile=64:64
wait_for 10 "the control socket back" nsx "$PORTHOP" status -s "$sock"
[ "$(PH "$sock" status --json | jq '.control.accept_errors > 0')" = true ] || fail "accept errors not counted"
stop_porthopd
pass "EMFILE: the listener paused and resumed ($((cpu1 - cpu0)) CPU ticks in 3 s), clients answered through a spare descriptor"
