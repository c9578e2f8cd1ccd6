#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# Builds the addon with UDP_RING_SANITIZE=address,undefined in a scratch copy
# of the package (so the normal build in build/ is never replaced under anyone
# else's feet), preloads libasan into node, and runs vitest there. Leak
# detection is off: Node itself leaks at exit (see scripts/test-leak.sh for
# the addon's leaks). Any ASan report fails the run; a UBSan "runtime error"
# halts the process it happens in, failing its test. A planted fault of each
# kind must be caught at the end (the self-check).
#   scripts/test-asan.sh [vitest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d /tmp/udp-ring-asan.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
# The working tree as it is (tests spawn bench/, soak/, fixtures), minus what is rebuilt or linked.
tar -c --exclude=./node_modules --exclude=./build --exclude=./.git --exclude=./dist . | tar -x -C "$work"
ln -s "$root/node_modules" "$work/node_modules"
cd "$work"
echo "asan: building the sanitized addon in $work"
UDP_RING_SANITIZE=address,undefined npx node-gyp rebuild >build.log 2>&1 || { cat build.log; exit 1; }
npx tsc -p tsconfig.json && node scripts/build-cjs.mjs
nm -D build/Release/udp_ring.node | grep __asan_ >/dev/null || { echo "asan: the addon is not instrumented" >&2; exit 1; }

libasan=$(g++ -print-file-name=libasan.so)
log="$work/sanitizer.log"
export LD_PRELOAD="$libasan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$log:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$log:${UBSAN_OPTIONS:-}"
export UDP_RING_SANITIZED=1
status=0
npx vitest run "$@" || status=$?
unset LD_PRELOAD
if ls "$log".* >/dev/null 2>&1; then
  echo "asan: sanitizer reports:" >&2
  cat "$log".* >&2
  status=1
fi
[ $status -eq 0 ] || exit $status

# Self-check: the same build and preload must catch a fault planted in the
# addon (selfCheckFault exists only in this build), or "clean" proves nothing.
# ASan writes to its log_path; UBSan, a second runtime loaded with the addon,
# ignores log_path and prints to stderr, then halts the process (exit 1), which
# fails whichever test ran it. Both paths are checked here.
selfcheck() {
  local kind=$1 expect=$2 check="$work/selfcheck-$1"
  # abort_on_error=0: ASan exits 1 rather than abort, so the shell prints no "Aborted".
  if LD_PRELOAD="$libasan" ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$check.asan" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=$3" \
    node -e "require('./build/Release/udp_ring.node').selfCheckFault('$kind')" >/dev/null 2>"$check.stderr"; then
    echo "asan: self-check failed: a planted $kind did not stop node" >&2
    return 1
  fi
  if ! cat "$check".* 2>/dev/null | grep -q "$expect" || ! cat "$check".* | grep -q 'SelfCheckFault'; then
    echo "asan: self-check failed: no '$expect' report from the addon's SelfCheckFault:" >&2
    cat "$check".* >&2 2>/dev/null
    return 1
  fi
}
# UBSan sees the overflowing store too (object size); let it pass so ASan's report is the one that stops.
selfcheck heap-buffer-overflow 'AddressSanitizer: heap-buffer-overflow' 0
selfcheck signed-overflow 'runtime error: signed integer overflow' 1
scope="the whole suite"; [ $# -eq 0 ] || scope="vitest $*"
echo "asan: clean (ASan + UBSan, $scope; a planted overflow and a planted UB were both caught)"
