# moto's standalone server (Python, PyPI `moto[server]`): a mock of AWS, in memory.
SERVER_ABOUT="moto_server (PyPI moto[server] >= 5)"

# How many of the aws CLI's multipart objects (its defaults: 8 MiB parts, a
# composite CRC32) s3-seed must count as verified. moto reports the CRC of the
# part CRCs but lists no ObjectParts (and its GetObjectAttributes answer has an
# ISO 8601 Last-Modified header that the Rust SDK refuses), so the composite
# CRC cannot be checked; the multipart ETag can: 8 MiB parts, inferred from
# the size, reproduce it (MD5 of the part MD5s), 1.
MULTIPART_VERIFIED=1
# Delta: no ObjectParts, so no part checksums to compare: a changed
# multipart object is fetched whole, 0.
DELTA=0

# What the probe finds (scenario.py; the README's table says the same).
# Without its optional crc32c and awscrt packages, moto stores a CRC32 under
# the names CRC32C and CRC64NVME ("other").
PART_CHECKSUMS="
CRC32:     object=composite/no-type   parts=none head-part=size+count
SHA256:    object=composite/no-type   parts=none head-part=size+count
CRC32C:    object=other/no-type       parts=none head-part=size+count
CRC64NVME: object=other/no-type       parts=none head-part=size+count
"

server_install() {
  pip_ensure moto_server 'moto[server]>=5'
  SERVER_ABOUT="moto_server $(python3 -c 'import moto; print(moto.__version__)')"
}

# server_start DATA_DIR PORT (runs in the foreground; the matrix backgrounds it)
server_start() {
  exec moto_server -H 127.0.0.1 -p "$2"
}
