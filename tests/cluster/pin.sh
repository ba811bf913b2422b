#!/usr/bin/env bash
# Pins the test control plane to one Kubernetes release, deriving everything
# that follows from k8s.io/kubernetes's own go.mod instead of typing it:
#
#   tests/cluster/go.mod       requires k8s.io/kubernetes@VERSION and replaces
#                              every k8s.io/* module that k8s.io/kubernetes
#                              replaces with ./staging/src/k8s.io/* (the
#                              staging modules) by the published v0.X.Y;
#   tests/cluster/etcd/go.mod  requires go.etcd.io/etcd/server/v3 at the
#                              version k8s.io/kubernetes requires.
#
# Usage: bash tests/cluster/pin.sh [v1.X.Y]   (default: the version go.mod has)
#        bash tests/cluster/pin.sh --check    (CI: fail if the committed files
#                                              differ from a fresh derivation)
# kwok (tests/cluster/kwok/) is pinned on its own: it is not part of a
# Kubernetes release (`go get -tool sigs.k8s.io/kwok/cmd/kwok@vX.Y.Z` there).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

current_version() {
  go mod edit -json "$1/go.mod" |
    jq -r '.Require[]? | select(.Path == "k8s.io/kubernetes") | .Version'
}

# The go.mod of k8s.io/kubernetes@$1, from the module cache (downloaded if needed).
upstream_gomod() {
  (cd "$here" && go mod download -json "k8s.io/kubernetes@$1") | jq -er .GoMod
}

# pin ROOT VERSION: rewrite ROOT/go.mod and ROOT/etcd/go.mod for VERSION.
pin() {
  local root=$1 version=$2 upstream staging etcd args=()
  case $version in
    v1.*.*) ;;
    *) echo "pin.sh: expected a version like v1.37.2, got '$version'" >&2; exit 2 ;;
  esac
  # k8s.io/kubernetes v1.X.Y is released together with its staging modules at v0.X.Y.
  staging="v0.${version#v1.}"
  upstream=$(upstream_gomod "$version")

  # Every replace of a k8s.io/* path by a local ./staging directory upstream.
  mapfile -t modules < <(go mod edit -json "$upstream" |
    jq -r '.Replace[] | select(.New.Path | startswith("./staging/src/k8s.io/")) | .Old.Path')
  [ "${#modules[@]}" -gt 0 ] || { echo "pin.sh: no staging replaces in $upstream" >&2; exit 1; }

  # Start from no replaces at all, so a module dropped upstream is dropped here.
  for old in $(go mod edit -json "$root/go.mod" | jq -r '.Replace[]?.Old.Path'); do
    args+=("-dropreplace=$old")
  done
  args+=("-require=k8s.io/kubernetes@$version")
  for m in "${modules[@]}"; do args+=("-replace=$m=$m@$staging"); done
  (cd "$root" && go mod edit "${args[@]}" && go mod tidy)

  etcd=$(go mod edit -json "$upstream" |
    jq -er '.Require[] | select(.Path == "go.etcd.io/etcd/server/v3") | .Version')
  (cd "$root/etcd" && go mod edit "-require=go.etcd.io/etcd/server/v3@$etcd" && go mod tidy)
  echo "pinned k8s.io/kubernetes $version: ${#modules[@]} staging modules at $staging, etcd $etcd" >&2
}

if [ "${1:-}" = "--check" ]; then
  version=$(current_version "$here")
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/etcd"
  cp "$here/go.mod" "$here/go.sum" "$tmp/"
  cp "$here/etcd/go.mod" "$here/etcd/go.sum" "$tmp/etcd/"
  pin "$tmp" "$version" 2>/dev/null
  for f in go.mod go.sum etcd/go.mod etcd/go.sum; do
    diff -u "$here/$f" "$tmp/$f" ||
      { echo "pin.sh --check: tests/cluster/$f is not what pin.sh derives; run bash tests/cluster/pin.sh" >&2; exit 1; }
  done
  echo "tests/cluster: go.mod files match k8s.io/kubernetes $version"
  exit 0
fi

version=${1:-$(current_version "$here")}
[ -n "$version" ] || { echo "usage: pin.sh v1.X.Y (go.mod names no k8s.io/kubernetes yet)" >&2; exit 2; }
pin "$here" "$version"
