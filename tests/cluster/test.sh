#!/usr/bin/env bash
# The cluster tests, as CI runs them: checks that tests/cluster/go.mod is what
# pin.sh derives, builds the control plane (cached, see build.sh) and
# cert-manager (cached, see cert-manager/build.sh), starts one
# cluster (up.sh) for every cluster test binary, runs them, and stops it.
#
# Usage: bash tests/cluster/test.sh [TEST BINARY...]
#   (default: every tests/cluster_*.rs; extra arguments for the test binaries,
#   e.g. a test name filter, go in CLUSTER_TEST_ARGS). On a failure it prints
#   the tail of every component's log.
set -euo pipefail
cd "$(dirname "$0")/../.."

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  for f in tests/cluster_*.rs; do tests+=("$(basename "$f" .rs)"); done
fi

bash tests/cluster/pin.sh --check
bin=$(bash tests/cluster/build.sh)
export S3_SEED_CLUSTER_BIN=$bin
# cert-manager's controller, cainjector and CRDs, for cluster_certmanager.
if [[ " ${tests[*]} " == *" cluster_certmanager "* ]]; then
  S3_SEED_CERT_MANAGER=$(bash tests/cluster/cert-manager/build.sh)
  export S3_SEED_CERT_MANAGER
fi

# Build the test binaries before the cluster starts, so it waits for nothing.
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
cargo test --locked "${args[@]}" --no-run

dir=$(mktemp -d "${TMPDIR:-/tmp}/s3-seed-cluster-ci.XXXXXX")
bash tests/cluster/up.sh "$dir" 2>"$dir/up.log" &
up=$!
stop() {
  kill -TERM "$up" 2>/dev/null || true
  wait "$up" 2>/dev/null || true
}
trap stop EXIT
until [ -e "$dir/ready" ]; do
  kill -0 "$up" 2>/dev/null || { cat "$dir/up.log" >&2; exit 1; }
  sleep 0.5
done
cat "$dir/up.log" >&2

export S3_SEED_CLUSTER=$dir
# shellcheck disable=SC2086 # CLUSTER_TEST_ARGS is a list of words
if ! cargo test --locked "${args[@]}" -- --ignored ${CLUSTER_TEST_ARGS:-}; then
  for log in "$dir"/logs/*.log; do # cert-manager's logs are there too
    printf '\n--- last lines of %s\n' "$log" >&2
    tail -n 15 "$log" >&2
  done
  exit 1
fi
