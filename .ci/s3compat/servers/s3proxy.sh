# S3Proxy (Java, Apache-2.0) from Maven Central (org.gaul:s3proxy, its
# jar-with-dependencies: nothing to build), on jclouds' filesystem backend.
S3PROXY_VERSION=4.1.0
SERVER_ABOUT="S3Proxy $S3PROXY_VERSION (jclouds filesystem backend)"

# How many of the aws CLI's multipart objects (its defaults: 8 MiB parts, a
# composite CRC32) s3-seed must count as verified. S3Proxy answers
# GetObjectAttributes with 501 when asked for x-amz-max-parts (and lists no
# ObjectParts without it), so the composite CRC cannot be checked; the
# multipart ETag can: 8 MiB parts, inferred from the size, reproduce it (MD5
# of the part MD5s), 1.
MULTIPART_VERIFIED=1
# Delta: no ObjectParts, so no part checksums to compare: a changed
# multipart object is fetched whole, 0.
DELTA=0

# What the probe finds (scenario.py; the README's table says the same).
# S3Proxy keeps a composite value for CRC64NVME too (S3 has only FULL_OBJECT).
PART_CHECKSUMS="
CRC32:     object=composite-N/COMPOSITE parts=none head-part=error-501
SHA256:    object=composite-N/COMPOSITE parts=none head-part=error-501
CRC32C:    object=composite-N/COMPOSITE parts=none head-part=error-501
CRC64NVME: object=composite-N/COMPOSITE parts=none head-part=error-501
"

s3proxy_dir() { echo "$S3_SERVERS_CACHE/s3proxy-$S3PROXY_VERSION"; }

server_install() {
  # S3Proxy 4 needs Java 17 or later.
  if ! java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then
    apt_install openjdk-17-jre-headless
  fi
  local dir tmp started
  if dir=$(cached "s3proxy-$S3PROXY_VERSION"); then
    echo "  s3proxy: cached in $dir (fetched in $(cat "$dir/build-seconds") s)"
    return 0
  fi
  command -v mvn >/dev/null || apt_install maven
  mkdir -p "$S3_SERVERS_CACHE"
  tmp=$(mktemp -d "$S3_SERVERS_CACHE/.build-s3proxy.XXXXXX")
  started=$(date +%s)
  echo "  s3proxy: fetching org.gaul:s3proxy:$S3PROXY_VERSION (jar-with-dependencies) with mvn"
  if ! nice -n 10 mvn -q -B -C -Dmaven.repo.local="$tmp/m2" dependency:get -Dtransitive=false \
    -Dartifact="org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies" >"$tmp/fetch.log" 2>&1; then
    tail -n 40 "$tmp/fetch.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  mv "$tmp/m2/org/gaul/s3proxy/$S3PROXY_VERSION/s3proxy-$S3PROXY_VERSION-jar-with-dependencies.jar" \
    "$tmp/s3proxy.jar"
  rm -rf "$tmp/m2"
  echo $(($(date +%s) - started)) >"$tmp/build-seconds"
  touch "$tmp/.complete"
  rm -rf "$(s3proxy_dir)"
  mv "$tmp" "$(s3proxy_dir)"
  echo "  s3proxy: fetched in $(cat "$(s3proxy_dir)/build-seconds") s into $(s3proxy_dir)"
}

server_start() {
  mkdir -p "$1/blobs"
  cat >"$1/s3proxy.conf" <<CONF
s3proxy.endpoint=http://127.0.0.1:$2
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3_COMPAT_ACCESS_KEY
s3proxy.credential=$S3_COMPAT_SECRET_KEY
jclouds.provider=filesystem
jclouds.filesystem.basedir=$1/blobs
CONF
  exec java -Xmx512m -jar "$(s3proxy_dir)/s3proxy.jar" --properties "$1/s3proxy.conf"
}
