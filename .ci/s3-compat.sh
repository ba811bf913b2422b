#!/usr/bin/env bash
# The S3 compatibility matrix: the same `s3-seed sync` scenario against
# several independent S3 implementations (.ci/s3compat/servers/*.sh), each
# behind a counting reverse proxy (.ci/s3compat/count-proxy.py) so that the
# requests s3-seed makes are counted at the server's side.
# The scenario itself is .ci/s3compat/scenario.py.
#
# Usage: S3_SEED_BIN=target/release/s3-seed bash .ci/s3-compat.sh [SERVER...]
#   SERVER: moto, minio, s3proxy, versitygw (default: all, in that order).
# Env:   S3_SEED_BIN (default target/debug/s3-seed),
#        S3_SEED_CACHE (default ~/.cache/s3-seed): server builds are cached in
#        $S3_SEED_CACHE/s3servers/<key>, so a warm run builds nothing.
# Every server runs on its own, even after another one failed; the exit
# status is non-zero when any failed.
set -euo pipefail
SELF=$(realpath "$0")
BIN=$(realpath -m "${S3_SEED_BIN:-$(dirname "$SELF")/../target/debug/s3-seed}")
cd "$(dirname "$SELF")/.."
HERE=$PWD/.ci/s3compat

[[ -x "$BIN" ]] || { echo "s3-compat: s3-seed binary not found at $BIN (set S3_SEED_BIN)" >&2; exit 1; }
export S3_SERVERS_CACHE="${S3_SEED_CACHE:-$HOME/.cache/s3-seed}/s3servers"
export S3_COMPAT_ACCESS_KEY=s3compat S3_COMPAT_SECRET_KEY=s3compat-secret-key
export PYTHONDONTWRITEBYTECODE=1  # keep __pycache__ out of the checkout
ALL=(moto minio s3proxy versitygw)

command -v aws >/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'awscli>=1.36'

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_http PORT PID LOG: until the server answers HTTP (any status).
wait_http() {
  local port=$1 pid=$2 log=$3
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; echo "  the server exited at start" >&2; return 1; }
    if python3 - "$port" <<'EOF' 2>/dev/null; then return 0; fi
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
c.request("GET", "/")
c.getresponse()
EOF
    sleep 0.2
  done
  echo "  the server did not answer on 127.0.0.1:$port within 60 s" >&2
  return 1
}

SERVER_PID='' PROXY_PID='' WORK=''
stop() {
  [[ -z $SERVER_PID ]] || kill "$SERVER_PID" 2>/dev/null || true
  [[ -z $PROXY_PID ]] || kill "$PROXY_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  [[ -z $WORK ]] || rm -rf "$WORK"
}

# run_server NAME: install (build or fetch, cached), start, scenario, stop.
run_server() {
  local name=$1 file="$HERE/servers/$1.sh"
  [[ -f "$file" ]] || { echo "  no such server: $name (one of: ${ALL[*]})" >&2; return 1; }
  # shellcheck source=/dev/null
  source "$HERE/lib.sh"
  # shellcheck source=/dev/null
  source "$file"
  local port proxy_port started
  # Globals: the EXIT trap runs after this function has returned.
  WORK=$(mktemp -d)
  trap stop EXIT

  started=$(date +%s)
  server_install
  echo "  install: $(($(date +%s) - started)) s"

  port=$(free_port)
  mkdir -p "$WORK/data"
  (server_start "$WORK/data" "$port") >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  started=$(date +%s)
  wait_http "$port" "$SERVER_PID" "$WORK/server.log"
  echo "  $SERVER_ABOUT: listening on 127.0.0.1:$port after $(($(date +%s) - started)) s"

  : >"$WORK/requests.log"
  python3 "$HERE/count-proxy.py" --listen 0 --upstream "127.0.0.1:$port" \
    --log "$WORK/requests.log" --port-file "$WORK/proxy-port" >"$WORK/proxy.log" 2>&1 &
  PROXY_PID=$!
  for _ in $(seq 1 100); do [[ -s "$WORK/proxy-port" ]] && break; sleep 0.1; done
  proxy_port=$(cat "$WORK/proxy-port")

  # The aws CLI with its defaults: a config file of our own that sets nothing.
  export AWS_ACCESS_KEY_ID=$S3_COMPAT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_COMPAT_SECRET_KEY
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
  : >"$AWS_CONFIG_FILE"
  : >"$AWS_SHARED_CREDENTIALS_FILE"
  unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE

  started=$(date +%s)
  if ! python3 "$HERE/scenario.py" --direct "http://127.0.0.1:$port" \
    --proxied "http://127.0.0.1:$proxy_port" --log "$WORK/requests.log" --work "$WORK/scenario" \
    --bin "$BIN" --multipart-verified "$MULTIPART_VERIFIED" --part-checksums "$PART_CHECKSUMS" --delta "$DELTA" \
    --crt-venv "$S3_COMPAT_CRT_VENV"; then
    echo "  server log (last lines):" >&2
    tail -n 20 "$WORK/server.log" | sed 's/^/    /' >&2
    [[ -s "$WORK/proxy.log" ]] && sed 's/^/    proxy: /' "$WORK/proxy.log" >&2
    return 1
  fi
  [[ ! -s "$WORK/proxy.log" ]] || { sed 's/^/    proxy: /' "$WORK/proxy.log" >&2; return 1; }
  echo "  scenario: $(($(date +%s) - started)) s"
}

# Each server in a process of its own (so `set -e` holds inside it).
if [[ ${1:-} == --one ]]; then
  run_server "$2"
  exit
fi
(($#)) && SERVERS=("$@") || SERVERS=("${ALL[@]}")
# shellcheck source=/dev/null
source "$HERE/lib.sh"
started=$(date +%s)
S3_COMPAT_CRT_VENV=$(crt_venv)
export S3_COMPAT_CRT_VENV
echo "s3-compat: aws CLI with awscrt in $S3_COMPAT_CRT_VENV ($(($(date +%s) - started)) s)"
declare -a RESULTS=()
failed=0
for name in "${SERVERS[@]}"; do
  printf '\n--> s3 compatibility: %s\n' "$name"
  started=$(date +%s)
  if bash "$SELF" --one "$name"; then
    RESULTS+=("PASS  $name  ($(($(date +%s) - started)) s)")
  else
    RESULTS+=("FAIL  $name  ($(($(date +%s) - started)) s)")
    failed=1
  fi
done
printf '\ns3 compatibility matrix:\n'
printf '  %s\n' "${RESULTS[@]}"
exit "$failed"
