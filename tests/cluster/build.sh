#!/usr/bin/env bash
# Builds the test control plane from the published Go modules pinned in this
# directory, once: kube-apiserver, kube-controller-manager, kube-scheduler
# (go.mod), etcd (etcd/go.mod), kwok and kwok-stages (kwok/go.mod).
#
# The binaries are cached under ${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/cluster/KEY/,
# KEY being a hash of the Go version, this script and every go.mod/go.sum
# here; a second run with the same inputs builds nothing. The normal Go build
# and module caches apply as well (GOCACHE, GOMODCACHE).
#
# Usage: bash tests/cluster/build.sh   -> prints the directory of the binaries
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/cluster

key=$(
  {
    go version
    cat "$here/build.sh"
    for m in . etcd kwok; do cat "$here/$m/go.mod" "$here/$m/go.sum"; done
    cat "$here"/kwok/stages/*.go
  } | sha256sum | cut -c1-16
)
out="$cache/$key"
binaries=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwok-stages)

complete() { for b in "${binaries[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if complete; then
  echo "$out"
  exit 0
fi

# Static binaries, no local paths in them, built where other work shares
# the two cores (nice). GOFLAGS from the environment (e.g. -p 1 when memory is
# short) are passed through.
export CGO_ENABLED=0
build=(nice -n 10 go build -trimpath)

version_of() { (cd "$here/$1" && go list -m -f '{{.Version}}' "$2"); }
kube=$(version_of . k8s.io/kubernetes)
kube_date=$(cd "$here" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
minor=${kube#v1.}
minor=${minor%%.*}
# What k8s.io/kubernetes's hack/lib/version.sh sets, so that /version and
# --version report the real release (also the default emulation version).
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$kube_date"
done

tmp=$(mktemp -d "$cache/.build.XXXXXX" 2>/dev/null || { mkdir -p "$cache" && mktemp -d "$cache/.build.XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
echo "building the control plane for Kubernetes $kube into $out" >&2
(cd "$here" && "${build[@]}" -ldflags "$kube_ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler)
(cd "$here/etcd" && "${build[@]}" -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
(cd "$here/kwok" && "${build[@]}" -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)
(cd "$here/kwok" && "${build[@]}" -ldflags "-s -w" -o "$tmp/kwok-stages" ./stages)

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built in $((SECONDS - start)) s: ${binaries[*]}" >&2
echo "$out"
