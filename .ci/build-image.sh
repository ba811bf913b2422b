#!/usr/bin/env bash
# Builds the image from the repository's Containerfile with buildah and writes
# it as an OCI image layout into OUT_DIR (tag: the crate version).
#
# Nothing can be pulled on this machine, so the build stage's base (the name
# the Containerfile's `FROM ... AS build` line gives, rust:1.95-slim-bookworm)
# is made here and tagged with that name: a Debian bookworm root made with
# debootstrap holding what the Rust image holds (gcc, libc6-dev,
# ca-certificates), plus this machine's Rust toolchain of the same version
# (without its docs) laid out as in that image (RUSTUP_HOME=/usr/local/rustup,
# CARGO_HOME=/usr/local/cargo). The final stage is FROM scratch and needs
# nothing. The Containerfile itself is built unchanged.
#
# Cached under ${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/image/:
#   bookworm-KEY.tar  the debootstrap root (KEY: suite + package list)
#   storage/          buildah's vfs storage, holding the base image (its label
#                     s3-seed.base-key says which root and toolchain made it)
#   target/           the build stage's /src/target (bind mount), so a second
#                     build recompiles only what changed
# The host's cargo registry is bind-mounted at the build stage's
# /usr/local/cargo/registry, so crates already downloaded are not fetched again.
#
# Usage: .ci/build-image.sh OUT_DIR
# Env:   S3_SEED_CACHE, DEBIAN_MIRROR (debootstrap's mirror; default: its own)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:?usage: .ci/build-image.sh OUT_DIR}
CACHE=${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/image
SUITE=bookworm
PACKAGES=gcc,libc6-dev,ca-certificates
say() { echo "build-image: $*"; }
fail() { echo "build-image: FAIL: $*" >&2; exit 1; }

missing=()
for tool in buildah umoci debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$CACHE"
bah() {
  buildah --root "$CACHE/storage" --runroot "$CACHE/run" --storage-driver vfs "$@"
}

base=$(awk 'toupper($1) == "FROM" && toupper($3) == "AS" && $4 == "build" {print $2; exit}' Containerfile)
[[ -n "$base" ]] || fail "no 'FROM IMAGE AS build' line in the Containerfile"
[[ "$base" != */* ]] || fail "the build stage's base '$base' names a registry or path; expected a short name"
rust_version=$(sed -n 's/^rust:\([0-9][0-9.]*\)-.*/\1/p' <<<"$base")
[[ -n "$rust_version" ]] || fail "cannot read a Rust version from '$base'"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
image="s3-seed:$version"

# This machine's toolchain of the version the Containerfile names.
sysroot=$(rustc "+$rust_version.0" --print sysroot 2>/dev/null || rustc "+$rust_version" --print sysroot 2>/dev/null ||
  rustc --print sysroot)
sysroot=$(readlink -f "$sysroot")
rustc_id=$("$sysroot/bin/rustc" -vV)
grep -q "^release: $rust_version\." <<<"$rustc_id" ||
  fail "no Rust $rust_version toolchain here (found $(head -n 1 <<<"$rustc_id"))"
toolchain_dir=/usr/local/rustup/toolchains/$(sed -n 's/^release: //p' <<<"$rustc_id")-$(sed -n 's/^host: //p' <<<"$rustc_id")

root_key=$(printf '%s\n' "$SUITE" "$PACKAGES" "${DEBIAN_MIRROR:-}" | sha256sum | cut -c1-16)
base_key=$(printf '%s\n' "$root_key" "$rustc_id" "$("$sysroot/bin/cargo" -V)" v1 | sha256sum | cut -c1-16)

make_root() {
  local tar="$CACHE/bookworm-$root_key.tar" dir
  [[ -s "$tar" ]] && return 0
  dir=$(mktemp -d "$CACHE/debootstrap.XXXXXX")
  say "debootstrap $SUITE ($PACKAGES) into $dir"
  # shellcheck disable=SC2086 # the mirror is optional
  nice -n 10 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$dir" ${DEBIAN_MIRROR:-} \
    >"$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log" >&2; rm -rf "$dir"; fail "debootstrap failed"; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* \
    "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
  tar -C "$dir" --numeric-owner -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$dir"
}

make_base() {
  local have ctr mnt
  have=$(bah inspect --type image --format '{{index .OCIv1.Config.Labels "s3-seed.base-key"}}' "$base" 2>/dev/null || true)
  if [[ "$have" == "$base_key" ]]; then
    say "base $base: cached ($base_key)"
    return 0
  fi
  make_root
  say "making base $base ($base_key): Debian $SUITE root + $(head -n 1 <<<"$rustc_id")"
  bah rmi -f "$base" >/dev/null 2>&1 || true
  ctr=$(bah from --pull=never scratch)
  mnt=$(bah mount "$ctr")
  tar -C "$mnt" --numeric-owner -xf "$CACHE/bookworm-$root_key.tar"
  mkdir -p "$mnt$toolchain_dir" "$mnt/usr/local/cargo/bin"
  tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$mnt$toolchain_dir" -xf -
  for tool in cargo rustc rustdoc; do ln -s "$toolchain_dir/bin/$tool" "$mnt/usr/local/cargo/bin/$tool"; done
  bah umount "$ctr" >/dev/null
  bah config \
    --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env RUST_VERSION="$rust_version" --cmd /bin/bash \
    --label s3-seed.base-key="$base_key" "$ctr"
  bah commit --rm --quiet "$ctr" "$base" >/dev/null
}

# Leftovers of an interrupted run.
bah rm --all >/dev/null 2>&1 || true

start=$SECONDS
make_base
say "base ready in $((SECONDS - start)) s"

registry=${CARGO_HOME:-$HOME/.cargo}/registry
mkdir -p "$registry" "$CACHE/target"
start=$SECONDS
say "buildah build -t $image (cargo build --release --locked inside)"
bah build --pull=never --isolation chroot --layers=false \
  --volume "$registry:/usr/local/cargo/registry" \
  --volume "$CACHE/target:/src/target" \
  -f Containerfile -t "$image" .
say "image built in $((SECONDS - start)) s"

if [[ -e "$OUT" ]]; then
  [[ -f "$OUT/oci-layout" || -z "$(ls -A "$OUT")" ]] || fail "$OUT exists and is not an OCI layout: not replacing it"
  rm -rf "$OUT"
fi
mkdir -p "$(dirname "$OUT")"
bah push --quiet "$image" "oci:$OUT:$version"
bah rmi "$image" >/dev/null
bah rmi --prune >/dev/null 2>&1 || true
say "wrote $OUT (tag $version): $(du -sh "$OUT" | cut -f1) compressed"
