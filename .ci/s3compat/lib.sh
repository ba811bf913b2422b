# Helpers for the server files in .ci/s3compat/servers/ (sourced).
#
# Builds and downloads are cached under $S3_SERVERS_CACHE/<key>/ (the matrix
# sets it to ${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/s3servers). A key names
# everything the result depends on (module version, Go version), so a warm run
# rebuilds nothing and a version bump builds anew. A build goes to a temporary
# folder first and is renamed into place only when it succeeded.

# cached KEY: succeeds when KEY is built; prints its folder.
cached() {
  local dir="$S3_SERVERS_CACHE/$1"
  [[ -f "$dir/.complete" ]] && echo "$dir"
}

# go_build KEY MODULE_PATH@VERSION BINARY_NAME
# `go install` of one main package into $S3_SERVERS_CACHE/KEY/bin/, with a
# module and build cache of its own (removed afterwards: only the binary is
# kept), `nice -n 10` (CI machines are shared with other builds).
go_build() {
  local key=$1 pkg=$2 name=$3 dir tmp started
  if dir=$(cached "$key"); then
    echo "  $name: cached in $dir (built in $(cat "$dir/build-seconds") s)"
    return 0
  fi
  command -v go >/dev/null || { echo "  go is required to build $name" >&2; return 1; }
  mkdir -p "$S3_SERVERS_CACHE"
  tmp=$(mktemp -d "$S3_SERVERS_CACHE/.build-$key.XXXXXX")
  started=$(date +%s)
  echo "  $name: building $pkg (cold; go $(go env GOVERSION))"
  if ! (
    export GOPATH="$tmp/gopath" GOMODCACHE="$tmp/gopath/pkg/mod" GOCACHE="$tmp/gocache"
    export GOBIN="$tmp/bin" GOFLAGS=-modcacherw CGO_ENABLED=0
    nice -n 10 go install -trimpath -ldflags='-s -w' "$pkg"
  ) >"$tmp/build.log" 2>&1; then
    tail -n 40 "$tmp/build.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$tmp/gopath" "$tmp/gocache"
  echo $(($(date +%s) - started)) >"$tmp/build-seconds"
  touch "$tmp/.complete"
  rm -rf "${S3_SERVERS_CACHE:?}/$key"
  mv "$tmp" "$S3_SERVERS_CACHE/$key"
  echo "  $name: built in $(cat "$S3_SERVERS_CACHE/$key/build-seconds") s into $S3_SERVERS_CACHE/$key"
}

# go_binary KEY NAME: the path of a binary go_build made.
go_binary() { echo "$S3_SERVERS_CACHE/$1/bin/$2"; }

# pip_ensure COMMAND SPEC: install SPEC with pip unless COMMAND is on PATH.
pip_ensure() {
  command -v "$1" >/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check "$2"
}

# apt_install PACKAGE: install a Debian package (apt-get update only if needed).
apt_install() {
  echo "  installing $1 (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
  }
}

# crt_venv: a virtualenv with the aws CLI and awscrt, which the CLI needs to
# compute CRC32C and CRC64NVME (the probe's uploads with those algorithms).
# Prints its folder. Pinned, so that the cache key says what is inside.
CRT_PINS="awscli==1.46.3 awscrt==0.38.1"
crt_venv() {
  local py key dir tmp started
  py=$(python3 -c 'import sys; print(".".join(map(str, sys.version_info[:3])))')
  key="awscli-crt-py$py-$(echo "$CRT_PINS" | tr ' =' '-_')"
  if dir=$(cached "$key"); then
    echo "$dir"
    return 0
  fi
  mkdir -p "$S3_SERVERS_CACHE"
  started=$(date +%s)
  # A venv cannot be moved: build it in place, mark it complete at the end.
  dir="$S3_SERVERS_CACHE/$key"
  rm -rf "$dir"
  # shellcheck disable=SC2086
  python3 -m venv "$dir" >&2 &&
    "$dir/bin/pip" install --quiet --disable-pip-version-check $CRT_PINS >&2 || {
    rm -rf "$dir"
    return 1
  }
  echo $(($(date +%s) - started)) >"$dir/build-seconds"
  touch "$dir/.complete"
  echo "  awscli + awscrt: installed in $(cat "$dir/build-seconds") s into $dir" >&2
  echo "$dir"
}
