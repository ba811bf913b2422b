#!/usr/bin/env bash
# Delta benchmark: what s3-seed fetches and how long it takes when a few
# parts of a large object change.
#
# The object (BIG_MIB, default 2048) is uploaded by `aws s3 cp` with its
# defaults (8 MiB parts, a CRC32 per part) to the test suite's S3 server run
# as a process (examples/s3-server), playing a store that keeps the parts'
# checksums as S3 and MinIO do (the s3s-fs binary keeps none). Each round:
#   cold   a sync into an empty folder;
#   delta  CHANGED parts of the file changed (one byte each, at random), the
#          file uploaded again the same way, and a sync of the same folder;
#   trusted  the same again with --trust-installed (TRUST=1, the default):
#          on XFS the unchanged parts are cloned and not read back.
# Bytes are counted by the server (GetObject body bytes sent); wall and CPU
# by /usr/bin/time; every run's files are checked by SHA-256. With DROP=1
# (the default) the page cache is dropped before every run, so the server's
# files and the installed file are read from disk; DROP=0 leaves them
# cached, as when a pod restarts on the node that just ran it.
# On each filesystem of FS:
#   work   BENCH_WORK's own (ext4 here: unchanged parts are read and written once);
#   xfs    a loop-mounted XFS with reflink, made here (needs root and
#          xfsprogs): copy_file_range shares the blocks instead.
#
# Usage: bash bench/sync/delta.sh
# Env:   BIG_MIB=2048 CHANGED=5 ROUNDS=3 FS="work xfs" DROP=1 TRUST=1
#        S3_SEED_BIN=...    skip the release build of the binary
#        BENCH_WORK=bench/.work-delta
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

BIG_MIB=${BIG_MIB:-2048}
CHANGED=${CHANGED:-5}
ROUNDS=${ROUNDS:-3}
FS=${FS:-"work xfs"}
DROP=${DROP:-1}
TRUST=${TRUST:-1}
WORK=${BENCH_WORK:-$REPO/bench/.work-delta}
PART=$((8 * 1024 * 1024))
KEY=delta/big.bin

log() { echo "delta: $*" >&2; }
die() { echo "delta: error: $*" >&2; exit 1; }

command -v aws >/dev/null || python3 -m pip install --quiet --disable-pip-version-check awscli
[[ -x /usr/bin/time ]] || apt-get install -y -qq time >/dev/null
if [[ -z ${S3_SEED_BIN:-} ]]; then
  log "cargo build --release (the binary and examples/s3-server)"
  cargo build --release --quiet --bin s3-seed --example s3-server
  S3_SEED_BIN=$REPO/target/release/s3-seed
fi
SERVER_BIN=${SERVER_BIN:-$REPO/target/release/examples/s3-server}
[[ -x $SERVER_BIN ]] || cargo build --release --quiet --example s3-server

rm -rf "$WORK/server" "$WORK/rows.tsv"
mkdir -p "$WORK/server"
XFS_MNT=$WORK/xfs
cleanup() {
  [[ -n ${SRV_PID:-} ]] && kill "$SRV_PID" 2>/dev/null || true
  mountpoint -q "$XFS_MNT" 2>/dev/null && umount "$XFS_MNT" || true
}
trap cleanup EXIT

# The server: commands into a FIFO on its stdin, one answer line each back
# through another (fds 3 and 4 here).
mkfifo "$WORK/server/in" "$WORK/server/out"
TMPDIR=$WORK/server "$SERVER_BIN" <"$WORK/server/in" >"$WORK/server/out" &
SRV_PID=$!
exec 3>"$WORK/server/in" 4<"$WORK/server/out"
read -r ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY BUCKET <&4
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
# server CMD...: send one command; its answer is in REPLY.
server() { echo "$*" >&3; read -r REPLY <&4 || die "the server stopped (command: $*)"; }
log "server at $ENDPOINT"

drop_caches() {
  [[ $DROP == 1 ]] || return 0
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || CACHE_NOTE="page cache NOT dropped (not permitted)"
}
if [[ $DROP == 1 ]]; then CACHE_NOTE="page cache dropped before every run"; else CACHE_NOTE="page cache left warm"; fi

SRC=$WORK/big.bin
if [[ ! -f $SRC || $(stat -c %s "$SRC") -ne $((BIG_MIB * 1024 * 1024)) ]]; then
  log "generating $BIG_MIB MiB"
  head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$SRC"
fi

publish() {
  aws --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$SRC" "s3://$BUCKET/$KEY"
  server arm "$KEY" "$PART"
  [[ $REPLY == parts* ]] || die "arm: $REPLY"
  sha256sum <"$SRC" | cut -d' ' -f1 >"$WORK/want.sha256"
}

# Change one byte in each of CHANGED distinct parts.
change_parts() {
  python3 - "$SRC" "$PART" "$CHANGED" "$1" <<'EOF'
import os, random, sys
path, part, changed, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
size = os.path.getsize(path)
rng = random.Random(seed)
parts = rng.sample(range((size + part - 1) // part), changed)
with open(path, "r+b") as f:
    for p in parts:
        at = p * part + rng.randrange(min(part, size - p * part))
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0xFF]))
print(" ".join(map(str, sorted(parts))), file=sys.stderr)
EOF
}

# run FS PHASE DIR [FLAG...]: one sync, timed, counted and checked; appends a row.
run() {
  local fs=$1 phase=$2 dir=$3 status=ok counts fetched reused
  shift 3
  server reset
  drop_caches
  if ! /usr/bin/time -v -o "$WORK/time.txt" "$S3_SEED_BIN" sync --source "s3://$BUCKET/delta/" \
    --target "$dir" --endpoint "$ENDPOINT" --path-style "$@" >"$WORK/out.txt" 2>&1; then
    status=FAILED
    tail -n 5 "$WORK/out.txt" >&2
  elif [[ $(sha256sum <"$dir/big.bin" | cut -d' ' -f1) != "$(cat "$WORK/want.sha256")" ]]; then
    status="WRONG (sha256)"
  fi
  server counts
  counts=$REPLY
  fetched=$(awk '{for (i = 1; i < NF; i++) if ($i == "get_bytes") print $(i + 1)}' <<<"$counts")
  reused=$(sed -n 's/.* bytes (+ \([0-9]*\) reused).*/\1/p' "$WORK/out.txt" | tail -n 1)
  log "$fs $phase: $status, fetched $fetched, reused ${reused:-0} ($counts)"
  python3 - "$WORK/time.txt" "$fs" "$phase" "$status" "$fetched" "${reused:-0}" >>"$WORK/rows.tsv" <<'EOF'
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
print("\t".join([sys.argv[2], sys.argv[3], f"{wall:.2f}", f"{cpu:.2f}", f"{rss:.1f}", sys.argv[4], sys.argv[5], sys.argv[6]]))
EOF
}

target_root() {
  case $1 in
    work) echo "$WORK/target" ;;
    xfs)
      if ! mountpoint -q "$XFS_MNT"; then
        command -v mkfs.xfs >/dev/null || apt-get install -y -qq xfsprogs >/dev/null
        mkdir -p "$XFS_MNT"
        truncate -s $((BIG_MIB * 3 + 1024))M "$WORK/xfs.img"
        mkfs.xfs -q -f -m reflink=1 "$WORK/xfs.img"
        mount -o loop "$WORK/xfs.img" "$XFS_MNT"
      fi
      echo "$XFS_MNT/target" ;;
    *) die "unknown filesystem $1 (FS may hold work, xfs)" ;;
  esac
}

log "uploading $BIG_MIB MiB with aws s3 cp and its defaults"
publish
round=0
for r in $(seq 1 "$ROUNDS"); do
  for fs in $FS; do
    round=$((round + 1))
    dir=$(target_root "$fs")
    rm -rf "$dir"
    mkdir -p "$dir"
    run "$fs" cold "$dir"
    log "changing $CHANGED parts (round $round):"
    change_parts "$round"
    publish
    run "$fs" delta "$dir"
    if [[ $TRUST == 1 ]]; then
      change_parts "$((round + 1000))"
      publish
      run "$fs" trusted "$dir" --trust-installed
    fi
  done
done

python3 - "$WORK/rows.tsv" "$BIG_MIB" "$CHANGED" "$CACHE_NOTE" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    r = line.rstrip("\n").split("\t")
    rows[(r[0], r[1])].append(r)
size = int(sys.argv[2]) * 1024 * 1024
print(f"\n{sys.argv[2]} MiB object, {sys.argv[3]} of {size // (8 << 20)} parts changed per round; {sys.argv[4]}\n")
print("| filesystem | sync | wall s (median) | wall min–max | CPU s | peak RSS MiB | fetched (median) | of the object | reused | wall ×cold | result |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
med = lambda rs, i: statistics.median(float(r[i]) for r in rs)
order = {"cold": 0, "delta": 1, "trusted": 2}
for (fs, phase) in sorted(rows, key=lambda k: (k[0], order.get(k[1], 3))):
    rs = rows[(fs, phase)]
    walls = [float(r[2]) for r in rs]
    bad = sorted({r[5] for r in rs if r[5] != "ok"})
    cold = rows.get((fs, "cold"))
    ratio = f"{med(rs, 2) / med(cold, 2):.2f}" if cold else "-"
    fetched = med(rs, 6)
    print(f"| {fs} | {phase} | {med(rs, 2):.2f} | {min(walls):.2f}–{max(walls):.2f} | {med(rs, 3):.2f} "
          f"| {max(float(r[4]) for r in rs):.1f} | {fetched / 1048576:.1f} MiB | {100 * fetched / size:.2f}% "
          f"| {med(rs, 7) / 1048576:.1f} MiB | {ratio} | {', '.join(bad) or 'ok'} ({len(rs)} runs) |")
EOF
