#!/usr/bin/env bash
# Valgrind leak run over open/receive/close cycles (scripts/leak-cycles.mjs).
# Node itself leaves memory at exit, so only loss records with a frame in the
# addon (udp_ring.node) are judged: any "definitely lost" there fails.
#   scripts/test-leak.sh [cycles]
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-60}
log=${UDP_RING_VALGRIND_LOG:-$(mktemp /tmp/udp-ring-valgrind.XXXXXX)}
echo "leak: valgrind over $cycles open/receive/close cycles (slow: minutes)"
# Unrefed receivers left to GC still hold a thread until collected; the
# cleanup hook closes any left at exit.
valgrind --leak-check=full --show-leak-kinds=definite,possible --errors-for-leak-kinds=definite \
  --num-callers=40 --error-limit=no --log-file="$log" \
  node --expose-gc scripts/leak-cycles.mjs "$cycles"
summary=$(grep -E 'definitely lost:|indirectly lost:|possibly lost:|ERROR SUMMARY' "$log" || true)
echo "$summary"
# Split the log into loss records and keep those that pass through the addon.
awk '
  /are (definitely|possibly) lost in loss record/ { if (record != "") print record "\n----"; record = $0; keep = 1; next }
  keep && /^==[0-9]+== *$/ { print record "\n----"; record = ""; keep = 0; next }
  keep { record = record "\n" $0 }
  END { if (record != "") print record }
' "$log" | awk 'BEGIN { RS = "----\n" } /udp_ring\.node/ { print; print "----" }' > "$log.addon" || true
definite=$(grep -c 'definitely lost in loss record' "$log.addon" || true)
possible=$(grep -c 'possibly lost in loss record' "$log.addon" || true)
invalid=$(grep -A12 -E 'Invalid (read|write)|uninitialised|Mismatched free' "$log" | grep -c 'udp_ring\.node' || true)
echo "leak: loss records through udp_ring.node: definitely lost $definite, possibly lost $possible; invalid accesses in the addon: $invalid"
if [ "$definite" != 0 ] || [ "$invalid" != 0 ]; then
  cat "$log.addon"
  grep -B2 -A20 -E 'Invalid (read|write)|uninitialised' "$log" | head -100
  rm -f "$log.addon"
  exit 1
fi
rm -f "$log.addon"
echo "leak: clean (no definitely lost block through udp_ring.node); full log: $log"
