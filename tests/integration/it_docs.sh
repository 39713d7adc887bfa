#!/usr/bin/env bash
# The manual pages pass mandoc's linter (warnings and worse), and every
# configuration key porthop accepts is documented in porthop.json(5).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/scripts/lib.sh"
require_tools mandoc
for page in "$SRC"/man/*.[158]; do
	mandoc -Tlint -W warning "$page" || fail "mandoc -Tlint $page"
done
pass "mandoc -Tlint: $(ls "$SRC"/man/*.[158] | wc -l) pages clean"
# Keys come from the validator's own tables, one per section, in
# src/lib/config.c and the section files beside it (config_*.c).
keys=$(awk '/static const char \*const [a-z]+_keys\[\] = \{/ {on = 1} on {print} on && /\};/ {on = 0}' \
	"$SRC"/src/lib/config*.c | grep -o '"[a-z_]*"' | tr -d '"' | sort -u)
missing=0
for k in $keys; do
	grep -q "^\.It Cm.*\b$k\b\|^\.Ss $k\b" "$SRC/man/porthop.json.5" || { echo "undocumented key: $k"; missing=1; }
done
[ $missing -eq 0 ] || fail "porthop.json(5) misses keys"
pass "porthop.json(5) documents all $(echo "$keys" | wc -l) keys"
# The same for porthop-crowdsec's configuration, in porthop-crowdsec(8).
keys=$(awk '/static const char \*const bouncer_keys\[\] = \{/ {on = 1} on {print} on && /\};/ {on = 0}' \
	"$SRC/src/lib/bouncer_config.c" | grep -o '"[a-z_]*"' | tr -d '"' | sort -u)
[ -n "$keys" ] || fail "no keys found in bouncer_config.c"
for k in $keys; do
	grep -q "^\.It Cm $k\b" "$SRC/man/porthop-crowdsec.8" || { echo "undocumented key: $k"; missing=1; }
done
[ $missing -eq 0 ] || fail "porthop-crowdsec(8) misses keys"
pass "porthop-crowdsec(8) documents all $(echo "$keys" | wc -l) keys"
