#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds porthop twice (plain,
# and with AddressSanitizer + UBSan) and runs every CTest test in both;
# then the integration tests with porthopd under valgrind, and each
# libFuzzer harness for a bounded time.
# Integration tests make their own network namespaces and Redis servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

jobs=$(nproc)
status=0
for variant in plain sanitize; do
	dir=build-test-$variant
	opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON)
	[ $variant = sanitize ] && opts+=(-DPORTHOP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
	echo "=== build ($variant)"
	cmake -S . -B "$dir" "${opts[@]}" >/dev/null
	# The progress lines dropped, the compiler's words kept.  The build's
	# own status decides, read from PIPESTATUS before any other command
	# runs (grep's is 1 when every line was progress); a porthopd left by
	# an earlier build proves nothing.
	codes=(0)
	cmake --build "$dir" -j "$jobs" -- --no-print-directory 2>&1 | grep -v '^\[' \
		|| codes=("${PIPESTATUS[@]}")
	[ "${codes[0]}" -eq 0 ] || { echo "build ($variant) failed (exit ${codes[0]})"; exit 1; }
	echo "=== tests ($variant)"
	# halt_on_error: a sanitizer report fails the test that caused it.
	# The Debian package is built and installed once, from the plain pass.
	labels=()
	[ $variant = sanitize ] && labels=(-LE package)
	if ! ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
	     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	     ctest --test-dir "$dir" --output-on-failure -j 1 "${labels[@]}"; then
		status=1
	fi
done
# The integration suite again, porthopd under valgrind memcheck: any error
# or leak fails the test that caused it.
echo "=== integration tests under valgrind (plain build)"
if ! PORTHOP_VALGRIND=1 ctest --test-dir build-test-plain -L integration \
     --output-on-failure -j 1; then
	status=1
fi

# The libFuzzer harnesses, a bounded time each, ASan + UBSan.
echo "=== fuzzing"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}" || status=1
exit $status
