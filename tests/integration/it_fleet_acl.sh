#!/usr/bin/env bash
# The fleet stream's trust: Redis ACL users as docs/fleet.md gives them
# (porthopd's may read the stream and acknowledge, the publisher's may
# add), and signed entries that cannot be replayed.  One Redis and one
# host, each in a namespace of its own on a bridge, a trigger key.
#   - the host, as its consumer-only user, follows the stream: entries the
#     publisher's user adds are in force;
#   - that user cannot write the stream or the snapshot: XADD, HSET, and
#     an XADD inside a script are refused (NOPERM);
#   - an old signed watch copied into the stream again (XADD of its
#     fields, by someone allowed to XADD) is refused as a replay, counted,
#     acknowledged, and changes nothing;
#   - an entry the publisher's user adds with an explicit ID far in the
#     future does not make the entries after it (whose IDs Redis then
#     gives that time) replays, and an old copy is still refused.
. "$(dirname "$0")/lib.sh"
. "$SRC/scripts/fleet.sh"
on_exit fleet_show_h1

fleet_small pha$$ 1
rcli() { ip netns exec $P-r redis-cli -h $R "$@"; }
# The users of docs/fleet.md ("Redis users").
# EVAL declares its keys as written to: the keys' pattern cannot be
# read-only; the commands are what keeps writes away (a script's commands
# are checked against the user's too).
rcli acl setuser porthopd on '>hostpw' resetkeys '~porthop:feed*' \
	resetchannels -@all +auth +role +xreadgroup \
	+xack '+xgroup|create' '+xgroup|setid' '+xinfo|stream' '+xinfo|groups' \
	+eval +hgetall +get >/dev/null
rcli acl setuser publisher on '>pubpw' resetkeys '~porthop:feed' \
	'~porthop:feed:snapshot*' resetchannels -@all +auth +role +eval +xadd \
	+hget +hset +hdel +zadd +zrem +zrangebyscore +set +time +wait \
	'+xinfo|stream' '+xinfo|groups' >/dev/null

head -c 48 /dev/urandom | base64 | head -c 48 >"$T/key"
chmod 600 "$T/key"
fleet_config "$T/h1.json" h1 "$(jq -n --arg r $R '{host: $r, username: "porthopd", password: "hostpw"}')"
fleet_config "$T/pub.json" pub "$(jq -n --arg r $R '{host: $r, username: "publisher", password: "pubpw"}')"
for f in h1 pub; do
	jq --arg k "$T/key" '.porthopd.trigger_key_file = $k | .porthopd.trigger_window_seconds = 2' \
		"$T/$f.json" >"$T/$f.tmp"
	mv "$T/$f.tmp" "$T/$f.json"
done
pub() { ip netns exec $P-r "$PORTHOP" "$@" -c "$T/pub.json"; }

fleet_host_start 1 $P-h1 "$T/h1.json"
pub watch add 192.0.2.7 --fleet --ttl 3600 --origin ids >/dev/null
has() { fleet_list 1 | grep -q "^$1 "; }
wait_until 10 has 192.0.2.7
pass "porthopd's consumer-only user follows the stream: the publisher's entry is in force"

as_host() { rcli --user porthopd --pass hostpw --no-auth-warning "$@" 2>&1; }
refused() {	# refused WHAT OUTPUT
	case $2 in
	*NOPERM*|*"no permissions"*|*"can't run this command"*) ;;
	*) fail "porthopd's user could $1: $2" ;;
	esac
}
refused "XADD" "$(as_host xadd porthop:feed '*' m x)"
refused "HSET the snapshot" "$(as_host hset porthop:feed:snapshot 192.0.2.99 '{}')"
refused "XADD from a script" "$(as_host eval "return redis.call('XADD', 'porthop:feed', '*', 'm', 'x')" 0)"
[ "$(rcli xlen porthop:feed)" -eq 1 ] || fail "the stream holds $(rcli xlen porthop:feed) entries, expected 1"
pass "porthopd's user cannot write the stream or the snapshot (XADD, HSET, XADD in a script: NOPERM)"

# The watch's signed message, copied; the watch undone; the copy added
# again once it is older than the window (2 s).
msg=$(rcli --raw xrange porthop:feed - + | sed -n 3p)
signed=$(rcli --raw xrange porthop:feed - + | sed -n 1p)
pub watch del 192.0.2.7 --fleet --origin ids >/dev/null
gone() { ! has 192.0.2.7; }
wait_until 10 gone
old() { [ $(( $(date +%s) - ${signed%%-*} / 1000 )) -gt 3 ]; }
wait_until 10 old
rcli xadd porthop:feed '*' m "$msg" >/dev/null
replayed() { [ "$(fleet_stream_field 1 replayed)" = 1 ] && fleet_caught_up 1; }
wait_until 10 replayed
gone || fail "the replayed watch was applied: $(fleet_list 1)"
grep -q "fleet: stream entry refused: .*signed at .* but added to the stream at" "$T/h1.log" ||
	fail "the refusal was not said"
metric=$(fleet_ctl 1 metrics | awk '$1 == "porthop_stream_replayed_total" {print $2}')
[ "$metric" = 1 ] || fail "porthop_stream_replayed_total is \"$metric\", expected 1"
# A fresh entry after it still goes through.
pub watch add 192.0.2.8 --fleet --ttl 3600 --origin ids >/dev/null
wait_until 10 has 192.0.2.8
pass "an old signed entry added again is refused as a replay (counted, acknowledged), and the stream goes on"

# The publisher's user (no trigger key needed) gives an entry an explicit
# ID far in the future: Redis gives every later entry an ID of that time.
# The entries published after it still go through; an old copy added
# then is still refused.
as_pub() { rcli --user publisher --pass pubpw --no-auth-warning "$@" 2>&1; }
out=$(as_pub xadd porthop:feed 99999999999999-0 m x)
[ "$out" = 99999999999999-0 ] || fail "the publisher's explicit ID: $out"
pub watch add 192.0.2.9 --fleet --ttl 3600 --origin ids >/dev/null
id=$(rcli --raw xrevrange porthop:feed + - count 1 | sed -n 1p)
[ "${id%%-*}" = 99999999999999 ] || fail "the entry after it has the ID $id"
wait_until 10 has 192.0.2.9
rcli xadd porthop:feed '*' m "$msg" >/dev/null
replayed2() { [ "$(fleet_stream_field 1 replayed)" = 2 ] && fleet_caught_up 1; }
wait_until 10 replayed2
gone || fail "the replayed watch was applied after the future ID: $(fleet_list 1)"
pass "an entry with a future ID (XADD by the publisher's user) does not make later entries replays; old copies still are"

PORTHOPD_PID=$(fleet_host_pid 1) porthopd_stop || fail "porthopd exited with an error"
