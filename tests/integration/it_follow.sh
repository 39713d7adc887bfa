#!/usr/bin/env bash
# Derived ports (docs/follow.md) end to end: a client namespace inside a
# keyed watched entry (0.0.0.0/0) logs in to a real sshd on the protected
# host through `porthop follow` (ssh key auth, BatchMode); a session kept
# open across slot changes and 20 reshuffles stays alive; the derived
# ports' map emptied by someone else is put back, a reload keeps it and
# one with a new key (longer slots) serves that key;
# without the key
# the real port is closed and nmap finds the derived ports' neighbourhood
# closed like any port; a clock one slot off still connects, two slots off
# does not.
. "$(dirname "$0")/lib.sh"
require_tools sshd ssh ssh-keygen socat nmap

SLOT=3
HOST=10.77.0.1
CL=ph-cl-$$-$RANDOM
ns_new "$CL"
ns_link "$NS" "$HOST" "$CL" 10.77.0.2

# The client's key, and the same file as porthopd's.
KEY=$T/alice.key
"$PORTHOP" keygen alice -o "$KEY" --use derive --slot-seconds $SLOT \
	--tcp 22 >/dev/null
cfg=$T/follow.json
native_config "$cfg" <<JSON
{
  "max_port_number": 65535,
  "tcp_ports": [22],
  "watched_addresses": [{"ip": "0.0.0.0/0", "derive_key": "$KEY"}]
}
JSON

# A real sshd on the protected host: its own host key, root's login with
# the test's client key only.
sshd_up "$NS" "$HOST"

start_porthopd "$cfg" --no-redis

# follow AT: the port of ssh at time AT (now, now+N...).
follow() {
	"$PORTHOP" follow $HOST 22 --key "$KEY" --at "$1"
}

# in_client CMD...: CMD in the client's namespace.
in_client() {
	ip netns exec "$CL" "$@"
}

# client_ssh AT REMOTE: ssh from the client, the port from follow --at AT.
client_ssh() {
	in_client ssh -i "$T/id" -o BatchMode=yes -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
		-o ConnectTimeout=5 \
		-o ProxyCommand="socat - TCP:%h:\$($PORTHOP follow %h %p --key $KEY --at $1)" \
		root@$HOST "$2"
}

# client_ssh_connect AT REMOTE: the same through porthop connect --at AT.
client_ssh_connect() {
	in_client ssh -i "$T/id" -o BatchMode=yes -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
		-o ConnectTimeout=5 \
		-o ProxyCommand="$PORTHOP connect %h %p --key $KEY --at $1" \
		root@$HOST "$2"
}

# early_in_slot: until at least MARGIN seconds (1 by default) remain of
# the current slot, so that a connection made now is still in the slot
# it was computed for.
MARGIN=1
slot_left() {
	[ $((SLOT - $(date +%s) % SLOT)) -gt "$MARGIN" ]
}
early_in_slot() {
	wait_for $((SLOT + 5)) "the start of a slot" slot_left
}

# The client logs in with the key.
[ "$(client_ssh now 'echo logged-in')" = logged-in ] ||
	fail "ssh through porthop follow did not log in"
# The same through porthop connect, which derives the port itself from a
# derive key (cli_derive_port).
early_in_slot
[ "$(in_client ssh -i "$T/id" -o BatchMode=yes -o StrictHostKeyChecking=no \
	-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5 \
	-o ProxyCommand="$PORTHOP connect %h %p --key $KEY" \
	root@$HOST 'echo logged-in')" = logged-in ] ||
	fail "ssh through porthop connect with a derive key did not log in"

# The kernel holds this slot's port and its neighbours', and the real port
# of ssh goes to a closed port: without the key, port 22 is closed.
early_in_slot
in_client socat -u OPEN:/dev/null TCP:$HOST:22,connect-timeout=3 2>/dev/null &&
	fail "the real port of ssh answered a keyed source"

# A session kept open across slot changes and 20 reshuffles: a line in,
# its echo out, after each of 6 slot changes with 4 reshuffles each (the
# last one's 4 make 24).
changes() {
	status derived_ports.slot_changes
}
coproc SESSION {
	client_ssh now 'while read -r l; do echo "got $l"; done' 2>>"$T/ssh.err"
}
shuffles=$(status shuffles)
for i in 1 2 3 4 5 6; do
	before=$(changes)
	wait_for $((SLOT * 4)) "a slot change" status_at_least \
		derived_ports.slot_changes $((before + 1))
	for k in 1 2 3 4; do
		ctl shuffle >/dev/null
		wait_for 10 "shuffle applied" status_at_least shuffles \
			$((shuffles + 1))
		shuffles=$(status shuffles)
	done
	echo "line $i" >&"${SESSION[1]}"
	read -r -t 20 reply <&"${SESSION[0]}" || fail "the session died at line $i"
	[ "$reply" = "got line $i" ] || fail "the session answered \"$reply\""
done
exec {SESSION[1]}>&-
wait "$SESSION_PID" || fail "the session ended with an error: $(cat "$T/ssh.err")"

# Someone else empties the derived ports' map: reconciliation puts it
# back (one service: 3 slots and the real port), and the client gets in.
dp_count() {
	nsx nft -j list map inet porthop dp0 | jq '[.nftables[].map.elem // empty | .[]] | length'
}
dp_full() {
	[ "$(dp_count)" -eq 4 ]
}
dp_full || fail "dp0 holds $(dp_count) elements; expected 4"
nsx nft flush map inet porthop dp0
wait_for 10 "dp0 put back" dp_full
[ "$(client_ssh now 'echo back')" = back ] ||
	fail "no login after the derived ports were put back"
# A reload keeps them (and the client gets in right after).
early_in_slot
ctl reload >/dev/null
dp_full || fail "dp0 holds $(dp_count) elements after a reload"
[ "$(client_ssh now 'echo reloaded')" = reloaded ] ||
	fail "no login after a reload"

# A reload that gives the entry a new key, of 20 s slots: the client with
# the new key gets in.  The checks below, which must not straddle a
# boundary, run well inside such a slot.
"$PORTHOP" keygen alice2 -o "$T/alice2.key" --use derive --slot-seconds 20 \
	--tcp 22 >/dev/null
KEY=$T/alice2.key
SLOT=20
MARGIN=6
jq --arg k "$KEY" '.nftables_service_configuration.watched_addresses[0].derive_key = $k' \
	"$cfg" >"$cfg.new"
mv "$cfg.new" "$cfg"
ctl reload >/dev/null
early_in_slot
[ "$(client_ssh now 'echo new-key')" = new-key ] ||
	fail "no login with the key a reload brought"

# nmap from the client, without the key: the ports around this slot's and
# the next one's (two either side of each) and the real port are closed,
# like a block of ports no slot near now uses.
early_in_slot
derived=""
for at in now-$SLOT now now+$SLOT now+$((2 * SLOT)); do
	derived="$derived $(follow "$at")"
done
near=""
for d in $(follow now) $(follow now+$SLOT); do
	for o in -2 -1 1 2; do
		p=$((d + o))
		case " $derived " in *" $p "*) ;; *) near="$near,$p" ;; esac
	done
done
ports="22${near}"
in_client nmap -n -Pn -sS -p "$ports" --max-retries 1 -oG - $HOST \
	>"$T/nmap.out"
open=$(grep -o '[0-9]*/open' "$T/nmap.out" || true)
[ -z "$open" ] || fail "nmap found open near the derived ports: $open"
closed=$(grep -o '[0-9]*/closed' "$T/nmap.out" | wc -l)
[ "$closed" -eq "$(echo "$ports" | tr ',' '\n' | wc -l)" ] ||
	fail "nmap did not find every port closed: $(cat "$T/nmap.out")"
# A FIN scan (packets conntrack calls invalid, swapped statelessly): the
# real port and the neighbours answer as closed ports do, and this slot's
# port as an open one (no answer), as sshd itself would.  The stateless
# swap holds this slot's pair alone, moved at porthopd's tick just past
# the boundary: the scan waits until the slot is 2 s old.
slot_settled() {
	slot_left && [ $(($(date +%s) % SLOT)) -ge 2 ]
}
wait_for $((SLOT + 5)) "a slot 2 s old" slot_settled
d=$(follow now)
in_client nmap -n -Pn -sF -p "$ports,$d" --max-retries 1 -oG - $HOST \
	>"$T/nmap-fin.out"
closed=$(grep -o '[0-9]*/closed' "$T/nmap-fin.out" | wc -l)
[ "$closed" -eq "$(echo "$ports" | tr ',' '\n' | wc -l)" ] ||
	fail "a FIN scan did not find the real port and the neighbours closed: $(cat "$T/nmap-fin.out")"
grep -q " $d/open|filtered/" "$T/nmap-fin.out" ||
	fail "a FIN scan did not find port $d open|filtered: $(cat "$T/nmap-fin.out")"

# Clock skew: a client one slot ahead or behind connects; two slots off
# does not.  follow -v says which slot it computed.
early_in_slot
now=$(date +%s)
"$PORTHOP" follow $HOST 22 --key "$KEY" --at "$now" -v 2>"$T/follow.err" >/dev/null
grep -q "slot $((now / SLOT)) " "$T/follow.err" ||
	fail "follow -v did not say the slot: $(cat "$T/follow.err")"
for at in now+$SLOT now-$SLOT; do
	early_in_slot
	[ "$(client_ssh "$at" 'echo skew-ok')" = skew-ok ] ||
		fail "a clock at $at did not connect"
	# The same through porthop connect, which derives the port itself.
	early_in_slot
	[ "$(client_ssh_connect "$at" 'echo skew-ok')" = skew-ok ] ||
		fail "a clock at $at did not connect through porthop connect"
done
for at in now+$((2 * SLOT)) now-$((2 * SLOT)); do
	early_in_slot
	client_ssh "$at" 'echo skew-ok' 2>/dev/null &&
		fail "a clock at $at (two slots off) connected"
	# porthop connect fails, and says the clock is the likely cause.
	early_in_slot
	if in_client "$PORTHOP" connect $HOST 22 --key "$KEY" --at "$at" \
		--timeout 2 </dev/null >/dev/null 2>"$T/connect.err"; then
		fail "porthop connect with a clock at $at (two slots off) connected"
	fi
	grep -q "within one slot" "$T/connect.err" ||
		fail "porthop connect two slots off did not name the clock: $(cat "$T/connect.err")"
done

stop_porthopd
pass "derived ports: ssh through porthop follow, a session across slot changes and reshuffles, closed neighbours, one slot of skew (follow and connect), two slots refused with the clock named"
