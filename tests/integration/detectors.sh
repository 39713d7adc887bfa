# shellcheck shell=bash
# The detectors' set-up that it_crowdsec.sh, it_fail2ban.sh, it_sshguard.sh
# and it_fleet_adapters.sh share; sourced after lib.sh, with $T set.
# Functions only: nothing runs when it is sourced.
#
#   lapi_start NS DIR         CrowdSec's Local API alone (crowdsec -no-cs)
#                             in namespace NS on 127.0.0.1:8080, on a copy
#                             of the system configuration with its own
#                             database in DIR; LAPI_PID; stopped at exit
#   lapi_stop                 stops it
#   csx ARGS...               cscli on that configuration, in NS
#   f2b_config DIR SOCK       fail2ban.conf (log $T/fail2ban.log, socket
#                             SOCK, database in $T) and the test filter
#                             "porthop-test" in DIR
#   sshguard_start NS CONF LOG  the real sshguard in NS with CONF bind-
#                             mounted on /etc/sshguard/sshguard.conf in a
#                             mount namespace of its own; SG_PID

# The Local API: the system's files for everything read-only (profiles,
# hub), the test's own for the database, credentials and logs.
lapi_start() {
	LAPI_NS=$1 LAPI_DIR=$2
	mkdir -p "$LAPI_DIR/data"
	cat >"$LAPI_DIR/config.yaml" <<YAML
common:
  daemonize: false
  log_media: file
  log_dir: $LAPI_DIR/
  log_level: info
  working_dir: .
config_paths:
  config_dir: /etc/crowdsec/
  data_dir: $LAPI_DIR/data/
  simulation_path: /etc/crowdsec/simulation.yaml
  hub_dir: /var/lib/crowdsec/hub/
  index_path: /var/lib/crowdsec/hub/.index.json
  notification_dir: /etc/crowdsec/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: /etc/crowdsec/acquis.yaml
  parser_routines: 1
cscli:
  output: human
  color: "no"
db_config:
  log_level: info
  type: sqlite
  db_path: $LAPI_DIR/data/crowdsec.db
  use_wal: true
api:
  client:
    insecure_skip_verify: false
    credentials_path: $LAPI_DIR/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:8080
    profiles_path: /etc/crowdsec/profiles.yaml
    console_path: $LAPI_DIR/console.yaml
    trusted_ips:
      - 127.0.0.1
prometheus:
  enabled: false
  listen_addr: 127.0.0.1
  listen_port: 6060
YAML
	csx machines add porthop-it --auto -f "$LAPI_DIR/local_api_credentials.yaml" \
		>"$LAPI_DIR/cscli.log" 2>&1
	ip netns exec "$LAPI_NS" crowdsec -c "$LAPI_DIR/config.yaml" -no-cs \
		>"$LAPI_DIR/lapi.out" 2>&1 &
	LAPI_PID=$!
	on_exit lapi_stop
	WAIT_PID=$LAPI_PID wait_for 60 "the local API" lapi_up
}

csx() {
	ip netns exec "$LAPI_NS" cscli -c "$LAPI_DIR/config.yaml" "$@"
}

lapi_up() {
	ip netns exec "$LAPI_NS" curl -s -o /dev/null http://127.0.0.1:8080/
}

lapi_stop() {
	[ -n "${LAPI_PID:-}" ] || return 0
	kill "$LAPI_PID" 2>/dev/null || true
	wait "$LAPI_PID" 2>/dev/null || true
}

# Lines the tests write: "DATE porthop-test: authentication failure from
# ADDRESS".  fail2ban cuts the date before matching.
f2b_config() {
	local dir=$1 sock=$2
	mkdir -p "$dir/action.d" "$dir/filter.d"
	cat >"$dir/fail2ban.conf" <<CONF
[Definition]
loglevel = INFO
logtarget = $T/fail2ban.log
syslogsocket = auto
socket = $sock
pidfile = $T/f2b.pid
dbfile = $T/f2b.sqlite3
CONF
	cat >"$dir/filter.d/porthop-test.conf" <<'CONF'
[Definition]
failregex = ^\s*porthop-test: authentication failure from <HOST>$
datepattern = {^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S
CONF
}

# sshguard reads only /etc/sshguard/sshguard.conf: CONF is bind-mounted
# there inside a mount namespace of sshguard's alone, so the host's file
# is never changed.  Its script kills its process group when it ends
# ("kill 0"): setsid gives it one of its own.
sshguard_start() {
	local ns=$1 conf=$2 log=$3
	[ -f /etc/sshguard/sshguard.conf ] ||
		fail "/etc/sshguard/sshguard.conf is missing (the sshguard package installs it)"
	ip netns exec "$ns" setsid unshare -m sh -c \
		'mount --bind "$1" /etc/sshguard/sshguard.conf && exec sshguard' \
		sh "$conf" >"$log" 2>&1 &
	# shellcheck disable=SC2034 # for the test that sources this
	SG_PID=$!
}
