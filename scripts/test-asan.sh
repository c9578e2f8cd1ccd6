#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# Builds the addon with UDP_RING_SANITIZE=address,undefined in a scratch copy
# of the package (so the normal build in build/ is never replaced under anyone
# else's feet), preloads libasan into node, and runs vitest there. Leak
# detection is off: Node itself leaks at exit (see scripts/test-leak.sh for
# the addon's leaks). Any ASan report or UBSan "runtime error" fails the run.
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
npx tsc -p tsconfig.json
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
[ $status -eq 0 ] && echo "asan: clean (ASan + UBSan, the whole suite)"
exit $status
