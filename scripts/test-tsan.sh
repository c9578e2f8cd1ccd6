#!/usr/bin/env bash
# ThreadSanitizer over the ring's discipline: builds native/test/ring_stress.cc
# against the real RingWriter (native/ring_writer.cc), with two producers
# under one lock (the receive thread and the event loop's direct receive) and
# a consumer that releases as receiver.ts does, and runs it under both
# overflow policies: small datagrams in two ring sizes, and datagrams up to
# 65,507 bytes in the smallest ring the writer accepts and in a larger one;
# each copied from a landing zone and received straight into ring space.
# Positions start just short of 2^32, so every run crosses the wrap. Any data
# race, wrong byte, stall or lost wakeup fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sources=(native/test/ring_stress.cc native/ring_writer.cc)
g++ -std=c++17 -O1 -g -fsanitize=thread -fno-omit-frame-pointer -Wall -Wextra -Inative \
  "${sources[@]}" -o "$out/ring_stress" -lpthread
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
count=${1:-1000000}
large=$((count / 10))
for policy in block drop; do
  # landing: every datagram copied from a landing slot; ring: large ones
  # written straight into reserved ring space first (receive_batch.cc's ArmMessages).
  for receive in landing ring; do
    for ring in 65536 1048576; do
      "$out/ring_stress" "$count" "$ring" "$policy" 1500 32 "$receive" | tee -a "$out/runs.log"
    done
    "$out/ring_stress" "$large" min "$policy" 65507 4 "$receive" | tee -a "$out/runs.log"
    "$out/ring_stress" "$large" 1048576 "$policy" 65507 8 "$receive" | tee -a "$out/runs.log"
  done
done
# An empty ring started again at its beginning (RingWriter::RestartIfEmpty):
# whether one run sees it depends on timing, so it is required over all runs.
restarts=$(grep -o '[0-9]* restarts of the empty ring' "$out/runs.log" | awk '{ n += $1 } END { print n + 0 }')
if [ "$restarts" -eq 0 ]; then
  echo "tsan: no run started an empty ring again at its beginning" >&2
  exit 1
fi
# Self-check: the same test with a relaxed (non-releasing) publish must be caught.
# The hand-over between the event loop's direct receive and the thread (the
# producer lock, the missed-receive flag, the watch), on real sockets.
g++ -std=c++17 -O1 -g -fsanitize=thread -fno-omit-frame-pointer -Wall -Wextra -Inative native/test/receive_loop_test.cc \
  native/receive_loop.cc native/receive_batch.cc native/ring_writer.cc -o "$out/receive_loop_test" -lpthread
"$out/receive_loop_test"
g++ -std=c++17 -O1 -g -fsanitize=thread -fno-omit-frame-pointer -Inative -DRING_STRESS_RELAXED_PUBLISH \
  "${sources[@]}" -o "$out/ring_stress_broken" -lpthread
if "$out/ring_stress_broken" 200000 65536 block >"$out/broken.log" 2>&1; then
  echo "tsan: self-check failed: a relaxed publish was not reported" >&2
  exit 1
fi
grep -q 'ThreadSanitizer: data race' "$out/broken.log" || { echo "tsan: self-check failed for another reason:" >&2; cat "$out/broken.log" >&2; exit 1; }
echo "tsan: clean (and a deliberately relaxed publish is reported as a race)"
