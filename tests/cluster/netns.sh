#!/usr/bin/env bash
# Makes one cluster address (a Service's ClusterIP) reachable from this
# machine, and only inside a network namespace of its own, so that a process
# started there (`ip netns exec NAME ...`) receives what the API server sends
# to that Service: a veth pair with a 169.254.x.y/30 link, IP on the
# namespace's end, and a /32 route to it on the host (more specific than
# up.sh's unreachable route for the cluster's range). Needs root.
#
# Usage: bash tests/cluster/netns.sh DIR IP
#   writes the namespace's name to DIR/netns once it is ready, and runs until
#   SIGTERM or SIGINT (or, with S3_SEED_CLUSTER_STOP_ON_EOF=1, end-of-file on
#   stdin); then it kills every process still in the namespace, and removes
#   its route, the veth pair and the namespace. Another netns.sh for the same
#   IP waits (up to 10 s) until the route of the previous one is gone.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: netns.sh DIR IP" >&2; exit 2; }
dir=$1
ip_addr=$2
id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
ns=s3seed-$id
host_if=s3s${id}h
ns_if=s3s${id}n
link=169.254.$((RANDOM % 256)).$((RANDOM % 64 * 4))
host_ip=${link%.*}.$((${link##*.} + 1))
ns_ip=${link%.*}.$((${link##*.} + 2))

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  rm -f "$dir/netns"
  if ip netns pids "$ns" >/dev/null 2>&1; then
    for pid in $(ip netns pids "$ns"); do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  ip route del "$ip_addr/32" via "$ns_ip" dev "$host_if" 2>/dev/null || true
  ip link del "$host_if" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  for pid in ${watcher:-} ${sleeper:-}; do kill "$pid" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

ip netns add "$ns"
ip link add "$host_if" type veth peer name "$ns_if" netns "$ns"
ip addr add "$host_ip/30" dev "$host_if"
ip link set "$host_if" up
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
in_ns ip addr add "$ns_ip/30" dev "$ns_if"
in_ns ip addr add "$ip_addr/32" dev "$ns_if"
in_ns ip link set "$ns_if" up
in_ns ip route add default via "$host_ip"
# The namespace of an earlier test process for the same Service may still be
# going away (its netns.sh removes its own route, and only that one).
for _ in $(seq 100); do
  ip route add "$ip_addr/32" via "$ns_ip" dev "$host_if" 2>/dev/null && break
  sleep 0.1
done
ip route get "$ip_addr" | grep -q "dev $host_if " || {
  echo "netns.sh: $ip_addr/32 is still routed elsewhere: $(ip route get "$ip_addr")" >&2
  exit 1
}

echo "$ns" >"$dir/netns"
if [ -n "${S3_SEED_CLUSTER_STOP_ON_EOF:-}" ]; then
  (while read -r _; do :; done; kill -TERM $$) <&0 &
  watcher=$!
fi
while :; do
  sleep 3600 &
  sleeper=$!
  wait "$sleeper" || true
done
