#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan + UBSan) and runs each
# for a bounded time from its seed corpus in fuzz/corpus.  Prints the
# executions per harness; exits non-zero if a harness crashes.
#
# usage: scripts/fuzz.sh [SECONDS]   (default 20 per harness)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
command -v clang >/dev/null || { echo "fuzz: clang is not installed"; exit 1; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DPORTHOP_FUZZ=ON \
	-DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_config fuzz_template \
	fuzz_auth fuzz_feed fuzz_state fuzz_decisions fuzz_control fuzz_fleet fuzz_knock \
	fuzz_jsonflat >/dev/null
status=0
for f in config template auth feed state decisions control fleet knock jsonflat; do
	work=$(mktemp -d)
	cp fuzz/corpus/$f/* "$work/"
	# Rule files named in fuzzed configurations resolve here.
	if (cd tests/corpus && ASAN_OPTIONS=detect_leaks=1 \
	    "../../build-fuzz/fuzz_$f" -max_total_time="$SECS" -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 "$work" >"$work.log" 2>&1); then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log")
		echo "fuzz_$f: $runs executions in ${SECS}s, no crash"
	else
		echo "fuzz_$f: FAILED"
		tail -n 40 "$work.log"
		status=1
	fi
	rm -rf "$work" "$work.log"
done
exit $status
