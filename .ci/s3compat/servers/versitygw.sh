# versitygw (Go, Apache-2.0), the Versity S3 Gateway with its posix backend:
# objects are plain files, metadata and checksums live in extended attributes.
VERSITYGW_MODULE=github.com/versity/versitygw
VERSITYGW_VERSION=v1.8.0
SERVER_ABOUT="versitygw $VERSITYGW_VERSION (posix backend)"

# How many of the aws CLI's multipart objects (its defaults: 8 MiB parts, a
# composite CRC32) s3-seed must count as verified. versitygw lists no
# ObjectParts (and its GetObjectAttributes answer has an asctime
# Last-Modified header that the Rust SDK refuses), so the composite CRC
# cannot be checked; the multipart ETag can: 8 MiB parts, inferred from the
# size, reproduce it (MD5 of the part MD5s), 1.
MULTIPART_VERIFIED=1
# Delta: no part checksums in ObjectParts: a changed multipart object is
# fetched whole, 0.
DELTA=0

# What the probe finds (scenario.py; the README's table says the same).
PART_CHECKSUMS="
CRC32:     object=composite-N/COMPOSITE parts=none head-part=size+count
SHA256:    object=composite-N/COMPOSITE parts=none head-part=size+count
CRC32C:    object=composite-N/COMPOSITE parts=none head-part=size+count
CRC64NVME: object=full/FULL_OBJECT      parts=none head-part=size+count
"

versitygw_key() { echo "versitygw-$VERSITYGW_VERSION-$(go env GOVERSION)"; }

server_install() {
  go_build "$(versitygw_key)" "$VERSITYGW_MODULE/cmd/versitygw@$VERSITYGW_VERSION" versitygw
}

server_start() {
  exec "$(go_binary "$(versitygw_key)" versitygw)" --quiet --port "127.0.0.1:$2" \
    --access "$S3_COMPAT_ACCESS_KEY" --secret "$S3_COMPAT_SECRET_KEY" posix "$1"
}
