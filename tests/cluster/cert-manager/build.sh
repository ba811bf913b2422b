#!/usr/bin/env bash
# Builds cert-manager's controller and cainjector from the Go module
# github.com/cert-manager/cert-manager (the version go.mod pins; cmd/ here only
# wires its packages, see cmd/*/main.go for why) and copies the CRDs of the same
# release (deploy/crds/ of that module) next to them:
#
#   DIR/bin/controller  DIR/bin/cainjector  DIR/crds/*.yaml  DIR/VERSION
#
# DIR is ${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/cert-manager/KEY, KEY a hash of
# go.mod, go.sum, cmd/ and the Go version, so a second run returns at once.
# The Go build cache is kept beside it (cert-manager/gocache). Prints DIR.
#
# Usage: tests/cluster/cert-manager/build.sh
set -euo pipefail
cd "$(dirname "$0")"

CACHE=${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/cert-manager
say() { echo "cert-manager build: $*" >&2; }
fail() { echo "cert-manager build: FAIL: $*" >&2; exit 1; }

key=$( (cat go.mod go.sum; find cmd -type f -name '*.go' | sort | xargs cat; go version) | sha256sum | cut -c1-16)
dir=$CACHE/$key
if [[ -f "$dir/.complete" ]]; then
  say "cached: $(cat "$dir/VERSION") in $dir"
  echo "$dir"
  exit 0
fi

export GOCACHE=$CACHE/gocache GOFLAGS=-mod=readonly
mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
mkdir -p "$tmp/bin" "$tmp/crds"
nice -n 10 go build -trimpath -ldflags='-s -w' -o "$tmp/bin/" ./cmd/controller ./cmd/cainjector
version=$(go list -m -f '{{.Version}}' github.com/cert-manager/cert-manager)
module_dir=$(go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
cp "$module_dir"/deploy/crds/*.yaml "$tmp/crds/"
chmod 0644 "$tmp"/crds/*.yaml
n=$(grep -l '^kind: CustomResourceDefinition' "$tmp"/crds/*.yaml | wc -l)
((n == 6)) || fail "expected the 6 cert-manager CRDs in $module_dir/deploy/crds, found $n"
echo "$version" >"$tmp/VERSION"
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
# Builds of other keys are stale.
find "$CACHE" -mindepth 1 -maxdepth 1 -regextype egrep -regex '.*/[0-9a-f]{16}' ! -name "$key" -exec rm -rf {} +
trap - EXIT
say "built controller and cainjector of cert-manager $version, $n CRDs, in $((SECONDS - start)) s: $dir"
echo "$dir"
