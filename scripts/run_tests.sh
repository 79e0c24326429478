#!/usr/bin/env bash
# The test suite as two pytest processes at once, one per core: the tests that talk
# to a local stack (mostly waiting on it) beside the CPU-bound tests on moto. Each
# writes its own log; both are printed, and the run fails if either fails.
set -u
cd "$(dirname "$0")/.."
logs=.fundrouter/test-logs
mkdir -p "$logs"
pytest=(.venv/bin/pytest -q --timeout 900 -p no:cacheprovider)

"${pytest[@]}" -m integration "$@" >"$logs/integration.log" 2>&1 &
integration=$!
"${pytest[@]}" -m "not integration" "$@" >"$logs/offline.log" 2>&1 &
offline=$!

wait "$offline"; offline_status=$?
wait "$integration"; integration_status=$?

echo "=== tests without a network (moto, fakes, template) ==="
cat "$logs/offline.log"
echo "=== tests on local stacks ==="
cat "$logs/integration.log"
# pytest exits 5 when a selection is empty: that would mean no test ran, a failure.
if [ "$offline_status" -ne 0 ] || [ "$integration_status" -ne 0 ]; then
  echo "FAILED: offline exit $offline_status, integration exit $integration_status" >&2
  exit 1
fi
