#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, for the cluster tests:
# etcd, kube-apiserver (Pod Security admission on, as by default; admin by
# client certificate), kube-controller-manager, kube-scheduler and kwok with
# one fake node that kwok keeps Ready and whose pods it takes to Running and
# Ready. Claims are provisioned by the controller manager's built-in hostPath
# provisioner (the default StorageClass `standard`), so volumeClaimTemplates
# bind without a CSI driver.
#
# Every cluster address (Service ClusterIPs, the node's and the pods' IPs)
# lies in one 10.X.0.0/16 chosen at random per run, and as root up.sh adds an
# `unreachable` route for it: nothing sent to a cluster address leaves this
# machine, and a test that makes a ClusterIP reachable adds its own /32 route
# into a network namespace of its own (tests/cluster/netns.sh). Two clusters
# on one machine never share a range (the route would already exist).
#
# Usage: bash tests/cluster/up.sh DIR
#   writes DIR/kubeconfig (admin), creates DIR/ready once /readyz answers and
#   the node is Ready, keeps every component's log in DIR/logs/, and runs
#   until SIGTERM or SIGINT; then it stops everything it started and removes
#   its data (etcd, certificates, provisioned volumes, DIR/kubeconfig,
#   DIR/ready, DIR/env, the route). DIR/env has SERVICE_CIDR, and FENCE (the
#   unreachable /16, empty when not root). A component that fails to start, or exits later, ends the
#   script non-zero with the tail of that component's log.
# Binaries: from build.sh (cached), or S3_SEED_CLUSTER_BIN=DIR to use others.
# S3_SEED_CLUSTER_STOP_ON_EOF=1: also stop when stdin reaches end-of-file (the
# test harness holds the other end of a pipe, so the cluster never outlives it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 1 ] || { echo "usage: up.sh DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd)
bin=${S3_SEED_CLUSTER_BIN:-$(bash "$here/build.sh")}
logs=$dir/logs
rm -rf "$logs" "$dir/ready" "$dir/kubeconfig" "$dir/env"
mkdir -p "$logs"
data=$(mktemp -d "${TMPDIR:-/tmp}/s3-seed-cluster.XXXXXX")
pki=$data/pki
kubeconfig=$dir/kubeconfig
startup_timeout=${S3_SEED_CLUSTER_TIMEOUT:-180}

# Components started so far, in order (stopped in reverse).
names=()
pids=()
stopping=

log() { printf 'up.sh: %s\n' "$*" >&2; }

# Deletes what the hostPath provisioner created for this cluster's claims.
remove_volumes() {
  [ -s "$kubeconfig" ] || return 0
  timeout 10 kubectl --kubeconfig "$kubeconfig" get pv \
    -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null |
    while read -r path; do
      case $path in /tmp/hostpath_pv/?*) rm -rf -- "$path" ;; esac
    done || true
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  stopping=1
  remove_volumes
  # One at a time, last started first: the API server stops quickly only
  # while etcd still answers.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  [ -z "${watcher:-}" ] || kill "$watcher" 2>/dev/null || true
  [ -z "${fence:-}" ] || ip route del unreachable "$fence" 2>/dev/null || true
  rm -rf "$data" "$kubeconfig" "$dir/ready" "$dir/env"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
if [ -n "${S3_SEED_CLUSTER_STOP_ON_EOF:-}" ]; then
  (while read -r _; do :; done; kill -TERM $$) <&0 &
  watcher=$!
fi

# Prints the tail of a component's log and ends the script (cleanup runs).
fail() {
  log "$1 $2; last lines of $logs/$1.log:"
  tail -n "${S3_SEED_CLUSTER_LOG_LINES:-40}" "$logs/$1.log" >&2 || true
  exit 1
}

start() {
  local name=$1
  shift
  "$@" >"$logs/$name.log" 2>&1 &
  names+=("$name")
  pids+=($!)
}

# wait_until NAME CHECK...: until CHECK succeeds, while NAME's process lives.
wait_until() {
  local name=$1 pid=${pids[-1]} deadline=$((SECONDS + startup_timeout))
  shift
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "$name" "exited during startup"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name" "not ready after ${startup_timeout}s"
    sleep 0.2
  done
}

free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

read -r etcd_port peer_port api_port kcm_port sched_port kwok_port < <(free_ports 6)

# The cluster's addresses: 10.X.0.0/16 (services in its first /24, the node
# at .255.1, pods in the upper half), fenced off by an unreachable route.
fence=
for _ in $(seq 20); do
  net=10.$((96 + RANDOM % 32))
  if [ "$(id -u)" -ne 0 ]; then
    log "not root: no unreachable route for $net.0.0/16"
    break
  fi
  if ip route add unreachable "$net.0.0/16" 2>/dev/null; then
    fence=$net.0.0/16
    break
  fi
  net= # taken by another cluster on this machine
done
[ -n "$net" ] || { log "no free 10.X.0.0/16 for the cluster's addresses"; exit 1; }
service_cidr=$net.0.0/24
printf 'SERVICE_CIDR=%s\nFENCE=%s\n' "$service_cidr" "$fence" >"$dir/env"
# Components talk to loopback and to the cluster's own addresses only.
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy

# --- certificates: one CA for serving and client certificates, an admin in
# system:masters, and the service-account signing key ---------------------
mkdir -p "$pki"
(
  cd "$pki"
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  key ca.key
  openssl req -x509 -new -key ca.key -subj /CN=s3-seed-test-ca -days 2 -out ca.crt 2>/dev/null
  sign() { # NAME SUBJECT EXTENSIONS
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" 2>/dev/null |
      openssl x509 -req -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile <(printf '%s\n' "$3") -out "$1.crt" 2>/dev/null
  }
  sign apiserver /CN=kube-apiserver "$(printf '%s\n' \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:$net.0.1,DNS:kubernetes.default.svc" \
    'extendedKeyUsage=serverAuth')"
  sign admin '/O=system:masters/CN=admin' 'extendedKeyUsage=clientAuth'
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
) || { log "openssl failed to create the certificates"; exit 1; }

kubectl config --kubeconfig "$kubeconfig" set-cluster s3-seed-test \
  --server "https://127.0.0.1:$api_port" --certificate-authority "$pki/ca.crt" --embed-certs >/dev/null
kubectl config --kubeconfig "$kubeconfig" set-credentials admin \
  --client-certificate "$pki/admin.crt" --client-key "$pki/admin.key" --embed-certs >/dev/null
kubectl config --kubeconfig "$kubeconfig" set-context s3-seed-test --cluster s3-seed-test --user admin >/dev/null
kubectl config --kubeconfig "$kubeconfig" use-context s3-seed-test >/dev/null

# --- the audit policy: every request on a Secret, as metadata (who read which
# Secret; tests count the controller's reads in logs/audit.log) --------------
cat >"$data/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources: [{group: "", resources: [secrets]}]
  - level: None
EOF

# --- every component's flags, in one place -----------------------------------
etcd_flags=(
  --name=default --data-dir="$data/etcd"
  --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port"
  --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port"
  --initial-cluster="default=http://127.0.0.1:$peer_port"
  --unsafe-no-fsync # test data: durability across power loss does not matter
)
apiserver_flags=(
  --etcd-servers="http://127.0.0.1:$etcd_port"
  --bind-address=127.0.0.1 --secure-port="$api_port" --advertise-address=127.0.0.1
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key"
  --client-ca-file="$pki/ca.crt" --authorization-mode=RBAC
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key"
  --service-cluster-ip-range="$service_cidr"
  --endpoint-reconciler-type=none # 127.0.0.1 cannot be an Endpoints address
  --cert-dir="$data/apiserver"
  --audit-policy-file="$data/audit-policy.yaml" --audit-log-path="$logs/audit.log"
  --audit-log-mode=blocking
  # Admission plugins: the defaults, so Pod Security admission is on.
)
controller_manager_flags=(
  --kubeconfig="$kubeconfig" --leader-elect=false
  --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$data/kcm"
  --controllers=statefulset-controller,persistentvolume-binder-controller,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,garbage-collector-controller,root-ca-certificate-publisher-controller,replicaset-controller,deployment-controller,disruption-controller,pod-garbage-collector-controller,node-lifecycle-controller
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt"
  --enable-hostpath-provisioner=true # the minimal provisioner behind StorageClass standard
)
scheduler_flags=(
  --kubeconfig="$kubeconfig" --leader-elect=false
  --bind-address=127.0.0.1 --secure-port="$sched_port"
)
kwok_flags=(
  --kubeconfig="$kubeconfig" --config="$data/kwok.yaml"
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
  --server-address="127.0.0.1:$kwok_port" --node-lease-duration-seconds=40
  --node-ip="$net.255.1" --cidr="$net.128.0/17"
)
node=kwok-node-0

kube() { kubectl --kubeconfig "$kubeconfig" --request-timeout=10s "$@"; }
https_ok() { curl -fsk --max-time 2 "https://127.0.0.1:$1/healthz"; }
api_ready() {
  curl -fs --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$api_port/readyz"
}

# --- start, in dependency order ----------------------------------------------
start etcd "$bin/etcd" "${etcd_flags[@]}"
wait_until etcd curl -fs --max-time 2 "http://127.0.0.1:$etcd_port/health"

start kube-apiserver "$bin/kube-apiserver" "${apiserver_flags[@]}"
wait_until kube-apiserver api_ready

start kube-controller-manager "$bin/kube-controller-manager" "${controller_manager_flags[@]}"
wait_until kube-controller-manager https_ok "$kcm_port"

start kube-scheduler "$bin/kube-scheduler" "${scheduler_flags[@]}"
wait_until kube-scheduler https_ok "$sched_port"

"$bin/kwok-stages" >"$data/kwok.yaml"
start kwok "$bin/kwok" "${kwok_flags[@]}"
wait_until kwok curl -fs --max-time 2 "http://127.0.0.1:$kwok_port/healthz"

# The fake node (no taint: every pod may land on it) and the default
# StorageClass of the hostPath provisioner.
kube apply -f - >"$logs/objects.log" 2>&1 <<EOF || { cat "$logs/objects.log" >&2; exit 1; }
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: $node
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/zone: zone-a
    type: kwok
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
node_ready() { [ "$(kube get node "$node" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_until kwok node_ready
# The service-account controller has run: pods can be created in "default".
wait_until kube-controller-manager kube get serviceaccount default -n default

touch "$dir/ready"
log "ready: $(kube version -o json 2>/dev/null | jq -r .serverVersion.gitVersion) at https://127.0.0.1:$api_port, KUBECONFIG=$kubeconfig, logs in $logs"

# Run until a signal (trap: exit 0) or until a component exits (exit 1).
while :; do
  wait -n "${pids[@]}" || true
  [ -z "$stopping" ] || break
  for i in "${!pids[@]}"; do
    kill -0 "${pids[i]}" 2>/dev/null || fail "${names[i]}" "exited"
  done
done
