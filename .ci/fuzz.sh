#!/usr/bin/env bash
# Fuzz targets (tests/fuzz/, cargo-fuzz + libFuzzer): build them, then run
# each for a bounded time from its committed seed corpus; any crash, panic
# or failed assertion fails the step. New corpus entries go to a scratch
# folder, so the checkout stays clean.
#
#   bash .ci/fuzz.sh                       # each target for FUZZ_SECONDS (40)
#   FUZZ_RUNS=10000000 bash .ci/fuzz.sh    # each target for that many runs
#   bash .ci/fuzz.sh admission             # only the targets named
#   FUZZ_FORK=2 FUZZ_SANITIZER=none ...    # two workers (libFuzzer -fork),
#                                          # no ASan (own build dir)
#
# Toolchain: the default (stable) one with RUSTC_BOOTSTRAP=1, which lets it
# take the sanitizer flags cargo-fuzz passes. A new machine has stable from
# rustup but maybe no nightly, and cannot download one. cargo-fuzz (pinned)
# and the instrumented build are cached in ${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
cache=${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/fuzz
seconds=${FUZZ_SECONDS:-40}
runs=${FUZZ_RUNS:-}
fork=${FUZZ_FORK:-}
sanitizer=${FUZZ_SANITIZER:-address}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(admission annotations sync_keys)

fuzz_bin="$cache/cargo-fuzz/bin"
if ! "$fuzz_bin/cargo-fuzz" --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  echo "-- installing cargo-fuzz $CARGO_FUZZ_VERSION into $cache/cargo-fuzz"
  cargo install cargo-fuzz --locked --version "=$CARGO_FUZZ_VERSION" --root "$cache/cargo-fuzz" --force --quiet
fi
export PATH="$fuzz_bin:$PATH"
export RUSTC_BOOTSTRAP=1
case $sanitizer in
address) export CARGO_TARGET_DIR="$cache/target" ;;
none) export CARGO_TARGET_DIR="$cache/target-none" ;;
*) echo "FUZZ_SANITIZER: address or none, not '$sanitizer'" >&2; exit 2 ;;
esac

fuzz() { cargo fuzz "$1" --fuzz-dir tests/fuzz -s "$sanitizer" "${@:2}"; }

cargo fmt --manifest-path tests/fuzz/Cargo.toml -- --check

echo "-- building the fuzz targets ($(rustc --version), sanitizer $sanitizer)"
fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$runs" ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$seconds"); fi
[ -z "$fork" ] || limit+=(-fork="$fork")
failed=()
for target in "${targets[@]}"; do
  echo "-- fuzz $target: ${limit[*]}, seeds in tests/fuzz/corpus/$target"
  mkdir -p "$work/$target"
  log="$work/$target.log"
  if ! fuzz run "$target" "$work/$target" "tests/fuzz/corpus/$target" -- \
    "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    failed+=("$target")
    tail -n 60 "$log" >&2
    echo "-- fuzz $target FAILED; the input is under tests/fuzz/artifacts/$target/" >&2
  fi
  grep -E '^(INFO: seed corpus|#[0-9]+ +DONE|Done|stat::|INFO: (fuzzed for|exiting))' "$log" || true
  [ -z "$fork" ] || grep -E '^#[0-9]+: ' "$log" | tail -n 1
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${targets[*]} passed"
