#!/usr/bin/env bash
# Runs the image that .ci/build-image.sh wrote (an OCI layout) the way a
# container runtime would, since none runs here: `umoci unpack`, then for each
# command a private mount namespace with the image's root bind-mounted
# READ-ONLY, /proc, a tmpfs /dev holding null/zero/random/urandom and a
# termination-log file, one writable volume at /volume, and `chroot
# --userspec` into it with an empty environment.
#
# Checks, and fails if any fails:
#   - contents: exactly the binary, the shared libraries its ELF header names
#     (and its loader), a CA bundle, passwd/group/nsswitch.conf; no shell, no
#     package manager; under 40 MiB; a numeric non-root USER in its config.
#   - as the image's user (65532:65532) AND as an arbitrary UID with GID 0 and
#     an fsGroup-owned volume (as OpenShift's restricted-v2 runs it,
#     1000680000:0, supplementary group 1000680000):
#       s3-seed --version
#       s3-seed sync from moto_server on 127.0.0.1 into /volume; every file's
#         SHA-256 equals the upload's, the JSON summary counts them all
#       s3-seed certs into /volume, then s3-seed webhook serving /healthz over
#         TLS; curl verifies the certificate against the generated CA, and the
#         serving process runs as that UID.
#
# Usage: .ci/test-image.sh OUT_DIR     (needs root: mounts and chroot)
set -euo pipefail
cd "$(dirname "$0")/.."

LAYOUT=${1:?usage: .ci/test-image.sh OUT_DIR}
MAX_BYTES=$((40 * 1024 * 1024))
say() { echo "test-image: $*"; }
fail() { echo "test-image: FAIL: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || fail "needs root (mount namespaces and chroot)"
[[ -f "$LAYOUT/oci-layout" ]] || fail "$LAYOUT is not an OCI image layout (run .ci/build-image.sh $LAYOUT)"
command -v umoci >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq umoci >/dev/null; }
command -v readelf >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binutils >/dev/null; }
command -v moto_server >/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
command -v aws >/dev/null || python3 -m pip install --quiet --disable-pip-version-check awscli

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # PORT PID WHAT LOG
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { cat "$4" >&2; fail "$3 exited at start"; }
    sleep 0.1
  done
  cat "$4" >&2
  fail "$3 did not listen on 127.0.0.1:$1 within 10 s"
}

# --- unpack and inspect -------------------------------------------------------
tags=$(umoci ls --layout "$LAYOUT")
[[ $(wc -l <<<"$tags") -eq 1 ]] || fail "expected one tag in $LAYOUT, found: $tags"
umoci unpack --image "$LAYOUT:$tags" "$WORK/bundle" >/dev/null
ROOTFS=$WORK/bundle/rootfs
BIN=$ROOTFS/usr/local/bin/s3-seed
[[ -x "$BIN" ]] || fail "no executable /usr/local/bin/s3-seed in the image"

read -r image_user entrypoint < <(python3 - "$LAYOUT" "$tags" <<'EOF'
import json, sys, os
layout, tag = sys.argv[1:]
def blob(digest):
    algo, hexd = digest.split(":")
    return json.load(open(os.path.join(layout, "blobs", algo, hexd)))
index = json.load(open(os.path.join(layout, "index.json")))
manifest = next(m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
config = blob(blob(manifest["digest"])["config"]["digest"])["config"]
print(config.get("User", ""), json.dumps(config.get("Entrypoint")))
EOF
)
[[ "$image_user" =~ ^[0-9]+:[0-9]+$ ]] || fail "image USER '$image_user' is not numeric UID:GID"
[[ "${image_user%%:*}" != 0 ]] || fail "image USER is root"
[[ "$entrypoint" == '["/usr/local/bin/s3-seed"]' ]] || fail "entrypoint is $entrypoint"

# Exactly what the binary needs: its NEEDED libraries and its loader.
interp=$(readelf -l "$BIN" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
mapfile -t needed < <(readelf -d "$BIN" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
expected=(usr/local/bin/s3-seed etc/passwd etc/group etc/nsswitch.conf etc/ssl/certs/ca-certificates.crt)
[[ -z "$interp" ]] || expected+=("${interp#/}")
for lib in "${needed[@]}"; do
  path=$(cd "$ROOTFS" && find . -name "$lib" -printf '%P\n' | head -n 1)
  [[ -n "$path" ]] || fail "the binary needs $lib, which the image lacks"
  expected+=("$path")
done
mapfile -t actual < <(cd "$ROOTFS" && find . \( -type f -o -type l \) -printf '%P\n' | sort)
mapfile -t expected < <(printf '%s\n' "${expected[@]}" | sort -u)
if [[ "${actual[*]}" != "${expected[*]}" ]]; then
  diff <(printf '%s\n' "${expected[@]}") <(printf '%s\n' "${actual[@]}") >&2 || true
  fail "image files differ from the expected set (< expected, > in the image)"
fi
for tool in sh bash dash busybox apt apt-get dpkg; do
  [[ -z "$(find "$ROOTFS" -name "$tool" -print -quit)" ]] || fail "the image contains $tool"
done
bytes=$(du -sb "$ROOTFS" | cut -f1)
((bytes < MAX_BYTES)) || fail "image root is $bytes bytes, over 40 MiB"
grep -q "^[^:]*:x:${image_user%%:*}:" "$ROOTFS/etc/passwd" || fail "no passwd entry for UID ${image_user%%:*}"
say "contents: ${actual[*]}"
say "size: $bytes bytes ($((bytes / 1024 / 1024)) MiB) uncompressed; user $image_user; needs ${needed[*]} via $interp"

# Mount points a runtime creates in the container's root.
mkdir -p "$ROOTFS/proc" "$ROOTFS/dev" "$ROOTFS/volume"
mkdir -p "$WORK/root"

# in_image UID:GID GROUPS VOLUME [NAME=VALUE...] -- ARGS...: run s3-seed ARGS
# from the read-only image root as UID:GID (supplementary GROUPS), with VOLUME
# (a host directory) at /volume and only the given environment.
in_image() {
  local user=$1 groups=$2 volume=$3
  shift 3
  unshare --mount --propagation private -- "$BASH" -c '
    set -e
    rootfs=$1 root=$2 user=$3 groups=$4 volume=$5 pidfile=$6 chroot=$7; shift 7
    echo $$ >"$pidfile" # the exec chain below keeps this PID for s3-seed
    mount --bind "$rootfs" "$root"
    mount -o remount,bind,ro "$root"
    mount -t proc proc "$root/proc"
    mount -t tmpfs -o nosuid,mode=755 tmpfs "$root/dev"
    for dev in null zero random urandom; do touch "$root/dev/$dev"; mount --bind "/dev/$dev" "$root/dev/$dev"; done
    install -m 0660 -o "${user%%:*}" -g 0 /dev/null "$root/dev/termination-log"
    mount --bind "$volume" "$root/volume"
    if touch "$root/.rw-probe" 2>/dev/null; then echo "the image root is writable" >&2; exit 99; fi
    env=()
    while [[ $1 != -- ]]; do env+=("$1"); shift; done
    shift
    exec env -i PATH=/usr/local/bin "${env[@]}" \
      "$chroot" --userspec="$user" --groups="$groups" "$root" /usr/local/bin/s3-seed "$@"
  ' in-image "$ROOTFS" "$WORK/root" "$user" "$groups" "$volume" "$WORK/in-image.pid" "$(command -v chroot)" "$@"
}

# --- an S3 server on loopback with a small tree --------------------------------
MOTO_PORT=$(free_port)
ENDPOINT=http://127.0.0.1:$MOTO_PORT
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
wait_port "$MOTO_PORT" "${PIDS[-1]}" moto_server "$WORK/moto.log"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
SRC=$WORK/src
mkdir -p "$SRC/models/v1"
printf 'seeded from the image\n' >"$SRC/readme.txt"
: >"$SRC/empty"
head -c 3000000 /dev/urandom >"$SRC/models/v1/weights.bin"
head -c 70000 /dev/urandom >"$SRC/models/v1/vocab with space.json"
aws --endpoint-url "$ENDPOINT" s3api create-bucket --bucket image >/dev/null
aws --endpoint-url "$ENDPOINT" s3 cp --quiet --recursive "$SRC" s3://image/data/
count=$(find "$SRC" -type f | wc -l)
say "moto_server on $ENDPOINT holds $count objects"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# run_as LABEL UID:GID GROUPS VOLUME_OWNER VOLUME_MODE HOME
run_as() {
  local label=$1 user=$2 groups=$3 owner=$4 mode=$5 home=$6
  local vol=$WORK/volume-$label out
  install -d -o "${owner%%:*}" -g "${owner#*:}" -m "$mode" "$vol"

  out=$(in_image "$user" "$groups" "$vol" HOME="$home" -- --version) || fail "$label: s3-seed --version failed"
  [[ "$out" == "s3-seed $version" ]] || fail "$label: --version printed '$out', want 's3-seed $version'"

  if ! in_image "$user" "$groups" "$vol" HOME="$home" \
    S3_SEED_SOURCE=s3://image/data/ S3_SEED_TARGET=/volume/data S3_SEED_ENDPOINT="$ENDPOINT" \
    S3_SEED_PATH_STYLE=true S3_SEED_SUMMARY_FORMAT=json AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test -- sync >"$WORK/sync.out" 2>"$WORK/sync.err"; then
    sed 's/^/  /' "$WORK/sync.err" >&2
    fail "$label: s3-seed sync failed"
  fi
  local summary rel
  summary=$(grep '^{' "$WORK/sync.out" | tail -n 1)
  python3 -c 'import json,sys; s=json.loads(sys.argv[1]); n=int(sys.argv[2]); sys.exit(0 if s["listed"]==n and s["downloaded"]==n else f"summary {s} does not count {n} downloads")' \
    "$summary" "$count" || fail "$label: sync summary"
  while IFS= read -r -d '' rel; do
    rel=${rel#"$SRC/"}
    [[ -f "$vol/data/$rel" ]] || fail "$label: $rel missing from the volume"
    [[ "$(sha256sum <"$SRC/$rel")" == "$(sha256sum <"$vol/data/$rel")" ]] || fail "$label: $rel differs (sha256)"
    [[ "$(stat -c %u "$vol/data/$rel")" == "${user%%:*}" ]] || fail "$label: $rel is not owned by ${user%%:*}"
  done < <(find "$SRC" -type f -print0)

  in_image "$user" "$groups" "$vol" HOME="$home" -- \
    certs --service s3-seed-webhook --namespace s3-seed --out /volume/tls >/dev/null ||
    fail "$label: s3-seed certs failed"
  local port pid code
  port=$(free_port)
  in_image "$user" "$groups" "$vol" HOME="$home" S3_SEED_LISTEN="127.0.0.1:$port" \
    S3_SEED_TLS_CERT=/volume/tls/tls.crt S3_SEED_TLS_KEY=/volume/tls/tls.key -- webhook \
    >"$WORK/webhook-$label.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" "$!" "$label: s3-seed webhook" "$WORK/webhook-$label.log"
  pid=$(cat "$WORK/in-image.pid")
  code=$(curl -sS -o "$WORK/healthz" -w '%{http_code}' --cacert "$vol/tls/ca.crt" \
    --resolve "s3-seed-webhook.s3-seed.svc:$port:127.0.0.1" "https://s3-seed-webhook.s3-seed.svc:$port/healthz") ||
    fail "$label: GET /healthz over TLS failed"
  [[ "$code" == 200 ]] || fail "$label: /healthz answered $code"
  [[ "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" == "${user%%:*}" ]] ||
    fail "$label: the webhook does not run as UID ${user%%:*}"
  kill "$pid"
  wait "${PIDS[-1]}" 2>/dev/null || true
  say "$label ($user, groups $groups): --version, sync of $count files (hashes equal), certs, webhook /healthz over TLS: ok"
}

uid=${image_user%%:*}
gid=${image_user#*:}
run_as image-user "$uid:$gid" "$gid" "$uid:$gid" 0755 /home/nonroot
# OpenShift: a UID from the namespace range, GID 0, the fsGroup as a
# supplementary group owning the volume (setgid, group-writable).
run_as openshift 1000680000:0 0,1000680000 0:1000680000 2775 /

say "PASS"
