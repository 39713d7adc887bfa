#!/usr/bin/env bash
# The runtime watch list end to end (native mode, real kernel): entries
# added with a mapping in force at once, both ways in the maps and in
# tracked4/6; origins that overlap (one origin's delete leaves the
# other's); refresh, expiry exact to the second; bulk feeds all or
# nothing with the bad line named; trusted addresses and overlapping
# prefixes refused; reload keeps runtime entries; kill -9 right after an
# acknowledgement loses nothing; a corrupt state file is moved aside; a
# full state directory refuses adds (exit 74) and changes nothing.
. "$(dirname "$0")/lib.sh"

STATE=$T/state
cfg=$T/watch.json
watch_config "$cfg" '{"trusted_addresses": ["10.9.1.0/24"], "untrack_unwatched": true}'

# elements ADDR: "proto port value" of ADDR's elements in the maps.
elements() {
	nsx nft -j list table inet porthop | jq -r --arg a "$1" '
		.nftables[] | select(.map) | .map.elem // [] | .[]
		| select((.[0].concat[0] | if type == "object" then
			"\(.prefix.addr)/\(.prefix.len)" else . end) == $a)
		| "\(.[0].concat[1]) \(.[0].concat[2]) \(.[1])"' | sort
}

# tracked: the elements of tracked4, one a line.
tracked() {
	nsx nft -j list set inet porthop tracked4 | jq -r '
		.nftables[] | select(.set) | .set.elem // [] | .[]
		| if type == "object" then
			(if .range then "\(.range[0])-\(.range[1])"
			 else "\(.prefix.addr)/\(.prefix.len)" end)
		  else . end' | sort
}

# in_force ADDR: ADDR's pairs (4: 3 TCP, 1 UDP) both ways in the maps.
in_force() {
	local n
	n=$(elements "$1" | wc -l)
	[ "$n" -eq 8 ] || fail "$1: $n map elements, expected 8 (4 pairs both ways)"
}

gone() {
	[ -z "$(elements "$1")" ] || fail "$1 still has map elements"
}

start_redis
start_porthopd "$cfg"

# An add returns with the mapping in force, and tracked.
ctl watch add 192.0.2.7 --origin f2b-sshd --ttl 600 >"$T/out"
grep -q "1 added" "$T/out" || fail "watch add said: $(cat "$T/out")"
in_force 192.0.2.7
tracked | grep -qx 192.0.2.7 || fail "192.0.2.7 not in tracked4: $(tracked)"
ctl mapping 192.0.2.7 --json | jq -e '.mapping[0].tcp["80"] > 0' >/dev/null ||
	fail "porthop mapping does not show 192.0.2.7"
status runtime.entries | grep -qx 1 || fail "status counts $(status runtime.entries) runtime entries"
status_at_least runtime.state_file.syncs 1 || fail "status counts no state file sync"
pass "add: mapping in force when acknowledged, tracked; counted by status"

# A second origin holds the same address; one origin's delete leaves it.
ctl watch add 192.0.2.7 --origin f2b-recidive >/dev/null
before=$(elements 192.0.2.7)
ctl watch del 192.0.2.7 --origin f2b-sshd >/dev/null
[ "$(elements 192.0.2.7)" = "$before" ] ||
	fail "deleting one origin's entry changed the mapping"
ctl watch list --json | jq -e '[.entries[] | select(.address == "192.0.2.7")]
	| length == 1 and .[0].origin == "f2b-recidive"' >/dev/null ||
	fail "the other origin's entry is not listed alone"
ctl watch del 192.0.2.7 --origin f2b-recidive >/dev/null
gone 192.0.2.7
tracked | grep -qx 192.0.2.7 && fail "192.0.2.7 still in tracked4"
expect_exit 65 nsx "$PORTHOP" watch -s "$T/control.sock" del 192.0.2.7
pass "origins overlap: one origin's delete leaves the other's; the last one's takes it out"

# A prefix and an address inside it, added together and apart.
ctl watch add 198.51.100.0/24 198.51.100.9 --origin ids >/dev/null
in_force 198.51.100.0/24
in_force 198.51.100.9
[ "$(tracked | grep -c '^198\.51\.100')" -eq 1 ] ||
	fail "tracked4 should hold the prefix alone: $(tracked)"
ctl watch del 198.51.100.0/24 --origin ids >/dev/null
tracked | grep -qx 198.51.100.9 || fail "the address lost its range: $(tracked)"
ctl watch del 198.51.100.9 --origin ids >/dev/null
[ -z "$(tracked | grep '^198\.51\.100')" ] || fail "ranges left: $(tracked)"
pass "prefix with an address inside: tracked4 as a full build would have it"

# Refusals change nothing.
expect_exit 65 nsx "$PORTHOP" watch -s "$T/control.sock" add 10.9.1.5
grep -q trusted "$T/out" || fail "no word of trusted: $(cat "$T/out")"
ctl watch add 203.0.113.0/24 --origin a >/dev/null
expect_exit 65 nsx "$PORTHOP" watch -s "$T/control.sock" add 203.0.113.128/25
grep -q overlaps "$T/out" || fail "no word of the overlap: $(cat "$T/out")"
expect_exit 65 nsx "$PORTHOP" watch -s "$T/control.sock" add 10.0.0.0/8
expect_exit 65 nsx "$PORTHOP" watch -s "$T/control.sock" add 224.0.0.1
expect_exit 65 nsx "$PORTHOP" watch -s "$T/control.sock" add 192.0.2.1 --origin 'Bad!'
expect_exit 64 nsx "$PORTHOP" watch -s "$T/control.sock" add 192.0.2.1 --ttl 0
printf '192.0.2.10\n192.0.2.11 60\nnot-an-address\n192.0.2.12\n' >"$T/feed"
expect_exit 65 nsx "$PORTHOP" watch -s "$T/control.sock" add --file "$T/feed"
grep -q "line 3" "$T/out" || fail "the bad line is not named: $(cat "$T/out")"
gone 192.0.2.10
pass "refused: trusted, overlapping prefix, too wide, multicast, bad origin, bad ttl, bad feed line (named; nothing applied)"

# A feed applied whole, from stdin.
for i in $(seq 1 200); do echo "192.0.2.$i 3600"; done >"$T/feed"
nsx "$PORTHOP" watch -s "$T/control.sock" add --file - --origin feed \
	<"$T/feed" >"$T/out"
grep -q "200 added" "$T/out" || fail "feed: $(cat "$T/out")"
in_force 192.0.2.200
ctl watch flush --origin feed >/dev/null
gone 192.0.2.200
pass "feed of 200 from stdin in one request; flush of its origin"

# Ignore lists, given unsorted and repeated: kept sorted and distinct,
# and those ports left where they are.
ctl watch add 192.0.2.90 --origin ign --tcp-ignore 443,22,22 >/dev/null
ctl watch list --origin ign --json | jq -e '.entries[0].tcp_ignore == [22, 443]' \
	>/dev/null || fail "ignore list: $(ctl watch list --origin ign --json)"
[ "$(elements 192.0.2.90 | wc -l)" -eq 4 ] ||
	fail "192.0.2.90: expected TCP 80 and UDP 53 moved: $(elements 192.0.2.90)"
ctl watch flush --origin ign >/dev/null
pass "ignore lists: sorted, distinct, those ports not moved"

# Expiry, exact to the second.
ctl watch add 192.0.2.50 --ttl 2 --origin short >/dev/null
in_force 192.0.2.50
t0=$(date +%s)
while [ -n "$(elements 192.0.2.50)" ]; do
	[ $(( $(date +%s) - t0 )) -lt 10 ] || fail "192.0.2.50 never expired"
	sleep 0.2
done
took=$(( $(date +%s) - t0 ))
[ "$took" -le 4 ] || fail "expired after ${took}s, TTL was 2"
pass "expiry: gone ${took}s after a 2 s TTL"

# A reload keeps the runtime entries and their mappings.
ctl watch add 192.0.2.60 --origin keep >/dev/null
ctl reload >/dev/null
in_force 192.0.2.60
pass "reload: runtime entries stay in force"

# kill -9 right after the acknowledgement: the entry is back at start.
ctl watch add 192.0.2.61 --origin crash >/dev/null
kill -9 "$(cat "$T/porthopd.pid")"
wait "$(cat "$T/porthopd.pid")" 2>/dev/null || true
: >"$LOG"	# start_porthopd waits for this run's start-up shuffle
start_porthopd "$cfg"
in_force 192.0.2.61
in_force 192.0.2.60
ctl watch list --origin crash --json | jq -e '.entries | length == 1' >/dev/null ||
	fail "the acknowledged entry is not listed after kill -9"
pass "kill -9 after the acknowledgement: entries back in force at start"
stop_porthopd

# A corrupt state file is moved aside; porthopd starts from its
# configuration.
printf 'porthop-state 1\n+ 192.0.2.70 x 1 0\ngarbage line\n' >"$STATE/runtime.state"
: >"$LOG"	# start_porthopd waits for this run's start-up shuffle
start_porthopd "$cfg"
ls "$STATE"/runtime.state.bad-* >/dev/null 2>&1 || fail "the bad file was not moved aside"
log_has "runtime.state.bad-" 1 || fail "the log does not say where the file went"
gone 192.0.2.70
stop_porthopd
pass "corrupt state file moved aside (named in the log); start from the configuration"

# A full state directory: adds refused with exit 74, nothing in force.
FULL=$T/full
mkdir -p "$FULL"
mount -t tmpfs -o size=16k tmpfs "$FULL"
on_exit_umount() { umount "$FULL" 2>/dev/null || true; }
on_exit on_exit_umount
jq --arg s "$FULL" '.porthopd.state_directory = $s' "$cfg" >"$T/full.json"
: >"$LOG"	# start_porthopd waits for this run's start-up shuffle
start_porthopd "$T/full.json"
dd if=/dev/zero of="$FULL/filler" bs=1k count=64 2>/dev/null || true
# The file's last page may still have room: add until the disk refuses
# (a record is about 50 bytes; a page 4 KiB).
rc=0
for i in $(seq 1 250); do
	rc=0
	nsx "$PORTHOP" watch -s "$T/control.sock" add "192.0.3.$i" --origin disk \
		>"$T/out" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || break
done
[ "$rc" -eq 74 ] || fail "no add refused on a full disk (last exit $rc): $(cat "$T/out")"
grep -q "state file" "$T/out" || fail "the refusal does not name the state file: $(cat "$T/out")"
gone "192.0.3.$i"
ctl watch list --json | jq -e --arg a "192.0.3.$i" \
	'[.entries[] | select(.address == $a)] | length == 0' >/dev/null ||
	fail "a refused add is listed"
in_force "192.0.3.$((i - 1))"
rm -f "$FULL/filler"
ctl watch add 192.0.2.81 --origin disk >/dev/null
in_force 192.0.2.81
stop_porthopd
: >"$LOG"	# start_porthopd waits for this run's start-up shuffle
start_porthopd "$T/full.json"
in_force 192.0.2.81
in_force "192.0.3.$((i - 1))"
gone "192.0.3.$i"
stop_porthopd
pass "full state directory: add $i refused (74), nothing of it in force; space back, adds work; a restart has what was acknowledged"
