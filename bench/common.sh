# Sourced by the benchmark scripts.

# bench_build_note BUILD_DIR: says which build the figures come from;
# they mean something only from an optimised one.
bench_build_note() {
	local t
	t=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$1/CMakeCache.txt" 2>/dev/null || true)
	case $t in
	Release|RelWithDebInfo) echo "# build: $1 ($t)" ;;
	*) echo "# build: $1 (${t:-no build type}): not optimised;" \
		"configure it with -DCMAKE_BUILD_TYPE=RelWithDebInfo" ;;
	esac
}
