#!/usr/bin/env bash
# The test suite as four pytest processes at once: the tests that talk to the shared
# local stack and the bank test on a stack of its own (both mostly waiting on it)
# beside the CPU-bound tests on moto, split in two for the two cores: the two long
# model tests (about half the moto time) and the rest. Each writes its own log; all
# are printed, and the run fails if any fails.
set -u
cd "$(dirname "$0")/.."
logs=.fundrouter/test-logs
mkdir -p "$logs"
pytest=(.venv/bin/pytest -q --timeout 900 -p no:cacheprovider)

"${pytest[@]}" -m "integration and not faults" "$@" >"$logs/integration.log" 2>&1 &
integration=$!
# The bank test under faults has a stack of its own: it waits on it beside the others.
"${pytest[@]}" -m faults "$@" >"$logs/faults.log" 2>&1 &
faults=$!
models=(tests/handlers/test_model_simulation.py tests/handlers/test_lines_adapter_agrees_with_model.py)
"${pytest[@]}" -m "not integration" "${models[@]}" "$@" >"$logs/models.log" 2>&1 &
models_pid=$!
"${pytest[@]}" -m "not integration" "${models[@]/#/--ignore=}" "$@" >"$logs/offline.log" 2>&1 &
offline=$!

wait "$offline"; offline_status=$?
wait "$models_pid"; models_status=$?
wait "$integration"; integration_status=$?
wait "$faults"; faults_status=$?

echo "=== tests without a network (moto, fakes, template) ==="
cat "$logs/offline.log"
echo "=== the model-versus-adapter test and the whole-system simulation (moto) ==="
cat "$logs/models.log"
echo "=== tests on the shared local stack ==="
cat "$logs/integration.log"
echo "=== the bank test on a local stack whose AWS calls fail ==="
cat "$logs/faults.log"
# pytest exits 5 when a selection is empty: that would mean no test ran, a failure.
if [ "$offline_status" -ne 0 ] || [ "$models_status" -ne 0 ] ||
  [ "$integration_status" -ne 0 ] || [ "$faults_status" -ne 0 ]; then
  echo "FAILED: offline exit $offline_status, models exit $models_status," \
    "integration exit $integration_status, faults exit $faults_status" >&2
  exit 1
fi
