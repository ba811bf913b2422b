#!/usr/bin/env bash
# Compatibility run: `s3-seed sync` against moto_server, an S3 implementation
# independent of the s3s-fs server the Rust tests use.
#
# Uploads a small tree with the aws CLI (one object multipart, one empty, one
# key with a space), then checks that a sync makes the files hash-equal, that
# a second sync downloads nothing, and that after deleting one object a third
# sync prunes exactly that file while a user's own file survives.
#
# The multipart object is the one s3-seed cannot verify: moto reports the aws
# CLI's composite CRC32 (the CRC of the part CRCs) with neither a `-N` suffix
# nor x-amz-checksum-type, and its ETag is a multipart one. s3-seed then asks
# GetObjectAttributes for the per-part CRCs, but moto 5 (5.2.1 checked) does not
# return ObjectParts, so there is nothing to check the parts against. The cold
# sync must count it unverified (not fail it as corrupt), log why, and verify
# every other file. If a later moto lists the parts, this expectation changes
# to verified = count, unverified = 0.
#
# Usage: S3_SEED_BIN=target/debug/s3-seed bash .ci/moto-compat.sh
# Env:   S3_SEED_BIN (default target/debug/s3-seed), MOTO_PORT (default: a free port).
set -euo pipefail

BIN=${S3_SEED_BIN:-target/debug/s3-seed}
BUCKET=compat
PREFIX=data/

fail() { echo "moto-compat: FAIL: $*" >&2; exit 1; }
say() { echo "moto-compat: $*"; }

[[ -x "$BIN" ]] || fail "s3-seed binary not found at $BIN (set S3_SEED_BIN or run cargo build)"
command -v moto_server >/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
command -v aws >/dev/null || python3 -m pip install --quiet --disable-pip-version-check awscli

WORK=$(mktemp -d)
PORT=${MOTO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
ENDPOINT="http://127.0.0.1:$PORT"
moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
cleanup() {
  kill "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
# Multipart from 5 MiB on, so the 12 MiB object is uploaded in three parts.
export AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
printf '[default]\ns3 =\n  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n' >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
awss3() { aws --endpoint-url "$ENDPOINT" "$@"; }

wait_for_moto() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    kill -0 "$MOTO_PID" 2>/dev/null || { cat "$WORK/moto.log" >&2; fail "moto_server exited at start"; }
    sleep 0.1
  done
  fail "moto_server did not listen on $ENDPOINT within 10 s"
}

seed_source() {
  local src="$WORK/src"
  mkdir -p "$src/dir/deeper"
  printf 'hello from moto\n' >"$src/small.txt"
  : >"$src/empty.bin"
  head -c 100000 /dev/urandom >"$src/dir/nested.bin"
  printf 'spaces survive\n' >"$src/dir/with space.txt"
  head -c $((12 * 1024 * 1024)) /dev/urandom >"$src/dir/deeper/big.bin"
  awss3 s3api create-bucket --bucket "$BUCKET" >/dev/null
  awss3 s3 cp --quiet --recursive "$src" "s3://$BUCKET/$PREFIX"
  local etag
  etag=$(awss3 s3api head-object --bucket "$BUCKET" --key "${PREFIX}dir/deeper/big.bin" --query ETag --output text)
  [[ "$etag" == *-3* ]] || fail "big.bin was not uploaded multipart (ETag $etag)"
  say "seeded $(find "$src" -type f | wc -l) objects (big.bin multipart, ETag $etag)"
}

# Run one sync; its JSON summary (last JSON line of stdout) goes to $WORK/summary.json.
run_sync() {
  local label=$1
  if ! S3_SEED_SOURCE="s3://$BUCKET/$PREFIX" S3_SEED_TARGET="$WORK/target" \
    S3_SEED_ENDPOINT="$ENDPOINT" S3_SEED_PATH_STYLE=true S3_SEED_PART_SIZE=1MiB \
    S3_SEED_SUMMARY_FORMAT=json S3_SEED_TERMINATION_LOG="$WORK/termination-log" \
    "$BIN" sync >"$WORK/stdout" 2>"$WORK/stderr"; then
    sed 's/^/  stderr: /' "$WORK/stderr" >&2
    fail "$label: s3-seed sync exited non-zero"
  fi
  grep '^{' "$WORK/stdout" | tail -n 1 >"$WORK/summary.json" || true
  [[ -s "$WORK/summary.json" ]] || { cat "$WORK/stdout" >&2; fail "$label: no JSON summary on stdout"; }
  say "$label: $(cat "$WORK/summary.json")"
}

# expect_summary LABEL KEY=VALUE...: each named summary field must equal VALUE.
expect_summary() {
  local label=$1; shift
  python3 - "$WORK/summary.json" "$label" "$@" <<'EOF'
import json, sys
path, label, *checks = sys.argv[1:]
summary = json.load(open(path))
missing = [k for k in ("listed", "skipped", "downloaded", "verified", "unverified", "pruned", "bytes", "seconds") if k not in summary]
if missing:
    sys.exit(f"moto-compat: FAIL: {label}: summary lacks {missing}: {summary}")
for check in checks:
    key, want = check.split("=")
    if summary[key] != int(want):
        sys.exit(f"moto-compat: FAIL: {label}: {key} is {summary[key]}, expected {want}: {summary}")
EOF
}

# Every source file must exist in the target with the same SHA-256.
expect_same_files() {
  local label=$1 rel
  while IFS= read -r -d '' rel; do
    rel=${rel#"$WORK/src/"}
    [[ -f "$WORK/target/$rel" ]] || fail "$label: $rel missing from the target"
    [[ "$(sha256sum <"$WORK/src/$rel")" == "$(sha256sum <"$WORK/target/$rel")" ]] ||
      fail "$label: $rel differs from the source (sha256)"
  done < <(find "$WORK/src" -type f -print0)
}

wait_for_moto
seed_source
count=$(find "$WORK/src" -type f | wc -l)
total=$(find "$WORK/src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')

run_sync "cold sync"
expect_summary "cold sync" listed="$count" downloaded="$count" pruned=0 bytes="$total" \
  verified=$((count - 1)) unverified=1
expect_same_files "cold sync"
grep -q 'no usable per-part checksums' "$WORK/stderr" ||
  fail "cold sync: the GetObjectAttributes fallback for big.bin was not logged"

run_sync "warm sync"
expect_summary "warm sync" listed="$count" skipped="$count" downloaded=0 pruned=0 bytes=0
expect_same_files "warm sync"

printf 'mine, not from S3\n' >"$WORK/target/user-notes.txt"
awss3 s3 rm --quiet "s3://$BUCKET/${PREFIX}dir/nested.bin"
rm "$WORK/src/dir/nested.bin"
run_sync "sync after a delete"
expect_summary "sync after a delete" listed=$((count - 1)) downloaded=0 pruned=1
[[ ! -e "$WORK/target/dir/nested.bin" ]] || fail "sync after a delete: dir/nested.bin was not pruned"
[[ "$(cat "$WORK/target/user-notes.txt")" == 'mine, not from S3' ]] ||
  fail "sync after a delete: the user's own file did not survive"
expect_same_files "sync after a delete"

say "PASS: cold, warm and prune syncs against moto_server agree with the aws CLI upload"
