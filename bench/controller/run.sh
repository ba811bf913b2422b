#!/usr/bin/env bash
# What `s3-seed controller` costs with many opted-in StatefulSets on a real
# API server: its memory (peak RSS, VmHWM, and RSS once settled, from
# /proc/PID/status) and the API-server and S3 requests one poll interval
# brings. Not a test: it prints a table.
#
#   bash bench/controller/run.sh                    # 1,000 StatefulSets
#   COUNT=200 WINDOWS=3 bash bench/controller/run.sh
#   BIN=target/release/s3-seed bash bench/controller/run.sh
#
# Everything is counted from outside the controller: API requests from
# kube-apiserver's own /metrics (apiserver_request_total by verb, resource
# and subresource, the difference over one window), S3 requests from the
# request log of a moto_server. Steps:
#  1. the test control plane (tests/cluster/up.sh) and a moto_server;
#     COUNT prefixes of OBJECTS small objects, one per StatefulSet;
#  2. COUNT StatefulSets in NAMESPACES namespaces, opted in, replicas 0,
#     each with its own prefix and a credentials Secret of its namespace;
#  3. one window of INTERVAL seconds without the controller: what the rest
#     of the control plane asks meanwhile (the "background" column);
#  4. the controller with --poll-interval-secs INTERVAL; the first window
#     is its start and first polls (it lists every StatefulSet and records
#     every revision); then WINDOWS windows of INTERVAL seconds each, where
#     nothing changes: the median of those is "per poll".
# Replicas 0: the controller reads only the StatefulSets and their status,
# so pods change nothing it does per poll, while 1,000 pods (kwok takes
# them to Ready) would take minutes to start on two cores and keep the
# controller manager, scheduler and kwok talking to the API server,
# which would bury the controller's own requests in apiserver_request_total.
# Takes about 4 minutes plus the control plane's start.
set -euo pipefail
export LC_ALL=C # sort and join agree
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COUNT=${COUNT:-1000}
NAMESPACES=${NAMESPACES:-10}
OBJECTS=${OBJECTS:-3}
INTERVAL=${INTERVAL:-20}
WINDOWS=${WINDOWS:-5}
if [[ -z ${BIN:-} ]]; then
  BIN=$root/target/release/s3-seed
  [[ -x $BIN ]] || BIN=$root/target/debug/s3-seed
fi
[[ -x $BIN ]] || { echo "no s3-seed binary: build one, or set BIN" >&2; exit 1; }
BUCKET=bench
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1

log() { printf 'bench: %s\n' "$*" >&2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/s3-seed-bench-controller.XXXXXX")
up= moto= ctl=
cleanup() {
  for pid in $ctl $moto $up; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- 1. control plane and S3 -------------------------------------------------
bash "$root/tests/cluster/up.sh" "$work/cluster" 2>"$work/up.log" &
up=$!
port=$(free_port)
moto_server -H 127.0.0.1 -p "$port" 2>"$work/moto.log" >&2 &
moto=$!
endpoint=http://127.0.0.1:$port
until curl -fs -o /dev/null "$endpoint/moto-api/"; do kill -0 "$moto" || exit 1; sleep 0.2; done
log "filling $COUNT prefixes of $OBJECTS objects"
python3 - "$endpoint" "$BUCKET" "$COUNT" "$OBJECTS" <<'PY'
import sys, boto3
from concurrent.futures import ThreadPoolExecutor
endpoint, bucket, count, objects = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
s3.create_bucket(Bucket=bucket)
def fill(i):
    for j in range(objects):
        s3.put_object(Bucket=bucket, Key=f"sts-{i:04}/file-{j}", Body=f"{i}.{j}\n".encode())
with ThreadPoolExecutor(8) as pool:
    list(pool.map(fill, range(count)))
PY
until [[ -e $work/cluster/ready ]]; do
  kill -0 "$up" 2>/dev/null || { cat "$work/up.log" >&2; exit 1; }
  sleep 0.5
done
export KUBECONFIG=$work/cluster/kubeconfig
kube() { kubectl --request-timeout=60s "$@"; }

# --- 2. the StatefulSets -----------------------------------------------------
log "creating $COUNT StatefulSets in $NAMESPACES namespaces"
python3 - "$endpoint" "$BUCKET" "$COUNT" "$NAMESPACES" >"$work/objects.json" <<'PY'
import json, sys, base64
endpoint, bucket, count, namespaces = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b64 = lambda s: base64.b64encode(s.encode()).decode()
items = []
for n in range(namespaces):
    items.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-{n}"}})
    items.append({"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": "s3", "namespace": f"bench-{n}"},
                  "data": {"AWS_ACCESS_KEY_ID": b64("bench"), "AWS_SECRET_ACCESS_KEY": b64("bench-secret")}})
for i in range(count):
    labels = {"app": f"sts-{i:04}"}
    items.append({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": f"sts-{i:04}", "namespace": f"bench-{i % namespaces}", "annotations": {
            "s3-seed.io/source": f"s3://{bucket}/sts-{i:04}/",
            "s3-seed.io/endpoint": endpoint,
            "s3-seed.io/path-style": "true",
            "s3-seed.io/region": "us-east-1",
            "s3-seed.io/credentials-secret": "s3",
            "s3-seed.io/rollout": "on-change"}},
        "spec": {"replicas": 0, "serviceName": f"sts-{i:04}",
                 "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}})
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)
PY
kube create -f "$work/objects.json" >/dev/null
# The controller manager writes a ControllerRevision and a status for each.
settled() {
  local n
  n=$(kube get controllerrevisions -A --no-headers 2>/dev/null | wc -l)
  [[ $n -ge $COUNT ]]
}
until settled; do sleep 2; done
sleep 5

# --- measuring ---------------------------------------------------------------
# apiserver_request_total as "VERB_resource/subresource COUNT", summed over
# the other labels (code, scope, group, version, component). The scrape
# itself is a GET of no resource and is left out.
api_counts() {
  kube get --raw /metrics | awk '
    /^apiserver_request_total\{/ {
      match($0, /verb="[^"]*"/); verb = substr($0, RSTART + 6, RLENGTH - 7)
      res = ""; if (match($0, /resource="[^"]*"/)) res = substr($0, RSTART + 10, RLENGTH - 11)
      sub_ = ""; if (match($0, /subresource="[^"]*"/)) sub_ = substr($0, RSTART + 13, RLENGTH - 14)
      if (res == "") next
      n[verb "_" res (sub_ == "" ? "" : "/" sub_)] += $NF
    }
    END { for (k in n) printf "%s %d\n", k, n[k] }' | sort
}
# Requests in the moto log, as "S3_VERB_kind COUNT" (ListObjectsV2 = list-type=2).
s3_lines() { wc -l <"$work/moto.log"; }
s3_counts() { # FROM TO (line numbers)
  sed -n "$(($1 + 1)),$2p" "$work/moto.log" | awk '
    match($0, /"[A-Z]+ [^ ]+ HTTP/) {
      split(substr($0, RSTART + 1, RLENGTH - 6), r, " ")
      kind = r[2] ~ /list-type=2/ ? "ListObjectsV2" : (r[2] ~ /\?/ ? "other" : "object")
      n["S3_" r[1] "_" kind]++
    }
    END { for (k in n) printf "%s %d\n", k, n[k] }' | sort
}
# The difference of two "KEY COUNT" files (sorted), zero rows left out.
delta() {
  join -a 2 -e 0 -o 0,1.2,2.2 "$1" "$2" | awk '{ d = $3 - $2; if (d != 0) printf "%s %d\n", $1, d }'
}
# window NAME: INTERVAL seconds; writes $work/NAME.{api,s3}.
window() {
  local name=$1 from
  api_counts >"$work/before.api"
  from=$(s3_lines)
  sleep "$INTERVAL"
  api_counts >"$work/after.api"
  delta "$work/before.api" "$work/after.api" >"$work/$name.api"
  s3_counts "$from" "$(s3_lines)" >"$work/$name.s3"
}
rss() { awk -v k="$2:" '$1 == k { print int($2 / 1024) }' "/proc/$1/status"; }

# --- 3. background -----------------------------------------------------------
log "background window (${INTERVAL}s, no controller)"
window background

# --- 4. the controller -------------------------------------------------------
log "controller: $BIN, --poll-interval-secs $INTERVAL"
RUST_LOG=warn "$BIN" controller --poll-interval-secs "$INTERVAL" --min-rollout-interval-secs 0 \
  --metrics-listen 127.0.0.1:0 2>"$work/controller.log" &
ctl=$!
window start
rss_start=$(rss "$ctl" VmRSS)
for i in $(seq "$WINDOWS"); do
  log "steady window $i/$WINDOWS"
  window "poll$i"
  echo "$(rss "$ctl" VmRSS)" >>"$work/rss"
done
hwm=$(rss "$ctl" VmHWM)
recorded=$(kube get statefulsets -A -o json |
  jq '[.items[] | select(.metadata.annotations["s3-seed.io/source-revision"] != null)] | length')
kill -0 "$ctl" || { tail "$work/controller.log" >&2; exit 1; }

# --- the table ---------------------------------------------------------------
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'; }
value() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
keys=$(cat "$work"/background.* "$work"/start.* "$work"/poll*.* | awk '{ print $1 }' | sort -u)
build=debug; [[ $BIN == */release/* ]] && build=release
echo
echo "s3-seed controller, $COUNT opted-in StatefulSets (replicas 0, $NAMESPACES namespaces, a credentials Secret each),"
echo "$OBJECTS objects per source, --poll-interval-secs $INTERVAL, $build build; $recorded revisions recorded"
echo
echo "| requests in one ${INTERVAL}s window | background (no controller) | start + first polls | per poll (median of $WINDOWS, min-max) |"
echo "|---|---:|---:|---:|"
for k in $keys; do
  b=$(value "$k" "$work/background.api"; value "$k" "$work/background.s3")
  s=$(value "$k" "$work/start.api"; value "$k" "$work/start.s3")
  polls=$(for i in $(seq "$WINDOWS"); do
    v=$(value "$k" "$work/poll$i.api"; value "$k" "$work/poll$i.s3")
    echo "${v:-0}"
  done)
  m=$(median <<<"$polls")
  lo=$(sort -n <<<"$polls" | head -1)
  hi=$(sort -n <<<"$polls" | tail -1)
  echo "| ${k//_/ } | ${b:-0} | ${s:-0} | $m ($lo-$hi) |"
done
echo
echo "| controller memory | MiB |"
echo "|---|---:|"
echo "| peak RSS (VmHWM) | $hwm |"
echo "| RSS after the first polls | $rss_start |"
echo "| RSS settled (median of the steady windows) | $(median <"$work/rss") |"
