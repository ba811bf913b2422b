# MinIO (Go), built from its Go module. MinIO is AGPL-3.0: the matrix only
# runs it unmodified, as a separate test process; s3-seed never links it.
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
SERVER_ABOUT="MinIO $MINIO_VERSION (AGPL-3.0, run unmodified as a separate process)"

# How many of the aws CLI's multipart objects (its defaults: 8 MiB parts, a
# composite CRC32) s3-seed must count as verified. MinIO lists every part
# with its CRC in GetObjectAttributes (and its ETag, now that s3-seed asks
# for that attribute too): the parts and the composite CRC32 are checked, 1.
MULTIPART_VERIFIED=1
# Delta: MinIO lists the parts with their CRC32s, so a re-upload with one
# part changed fetches that part only (scenario.py, delta), 1.
DELTA=1

# What the probe finds (scenario.py; the README's table says the same).
PART_CHECKSUMS="
CRC32:     object=composite-N/COMPOSITE parts=sizes+checksums head-part=size+checksum+count
SHA256:    object=composite-N/COMPOSITE parts=sizes+checksums head-part=size+checksum+count
CRC32C:    object=composite-N/COMPOSITE parts=sizes+checksums head-part=size+checksum+count
CRC64NVME: object=full/FULL_OBJECT      parts=sizes+checksums head-part=size+checksum+count
"

minio_key() { echo "minio-$MINIO_VERSION-$(go env GOVERSION)"; }

server_install() {
  go_build "$(minio_key)" "$MINIO_MODULE@$MINIO_VERSION" minio
}

server_start() {
  export MINIO_ROOT_USER="$S3_COMPAT_ACCESS_KEY" MINIO_ROOT_PASSWORD="$S3_COMPAT_SECRET_KEY"
  export MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1
  exec "$(go_binary "$(minio_key)" minio)" server --quiet --address "127.0.0.1:$2" \
    --console-address "127.0.0.1:0" "$1"
}
