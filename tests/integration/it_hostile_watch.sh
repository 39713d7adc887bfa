#!/usr/bin/env bash
# The hostile review of the runtime watch list, each finding kept as a
# script of its own in hostile_watch/ (each in its own network namespace):
# a delete naming an address twice, a symlink and a FIFO planted in the
# state directory, fail2ban's <ip> taken for an option, refused adds
# filling the origin table, a long Redis op message taken for a trigger.
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
dir=$(dirname "$0")/hostile_watch
for t in "$dir"/[0-9]*.sh; do
	echo "== $(basename "$t")"
	bash "$t" "$BUILD"
done
