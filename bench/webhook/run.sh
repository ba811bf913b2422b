#!/usr/bin/env bash
# Load benchmark of `s3-seed webhook`: admissions/s, p50/p99 latency and peak
# RSS over TLS with keep-alive, on this machine (server and load generator
# share its cores). Not a test: it prints one markdown table row to paste
# into the README ("Performance").
#
#   bench/webhook/run.sh                  # 20 s, 32 connections, 1 wrk thread
#   DURATION=60s CONNECTIONS=64 bench/webhook/run.sh
#
# Needs wrk (Debian: apt-get install -y wrk) and openssl (only if
# `s3-seed certs` is not available). The request is tests/fixtures/webhook/
# review-create.json: a CREATE that gets the init container (the full path:
# parse, mutate, diff, encode). Logs stay at the production default (info,
# JSON, one line per admission), written to a file.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
PORT=${PORT:-18443}
BODY_FILE=${BODY_FILE:-$root/tests/fixtures/webhook/review-create.json}
export BODY_FILE

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }

echo "building the release binary..." >&2
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/s3-seed

work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A serving certificate: `s3-seed certs` when it is implemented, else openssl.
if ! "$bin" certs --service localhost --namespace bench --out "$work/certs" >/dev/null 2>&1; then
  mkdir -p "$work/certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$work/certs/tls.key" -out "$work/certs/tls.crt" 2>/dev/null
fi

RUST_LOG=${RUST_LOG:-info} "$bin" --log-format json webhook \
  --listen "127.0.0.1:$PORT" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" \
  --shutdown-delay-secs 0 --image s3-seed:bench 2>"$work/webhook.log" &
pid=$!
for _ in $(seq 50); do
  curl -skf "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

# The request must be admitted with a patch before it is worth measuring.
curl -sk -H 'content-type: application/json' --data-binary "@$BODY_FILE" \
  "https://127.0.0.1:$PORT/mutate" | grep -q '"allowed":true,.*"patch":"' \
  || { echo "the webhook did not patch the benchmark request" >&2; exit 1; }

url="https://127.0.0.1:$PORT/mutate"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$root/bench/webhook/post.lua" "$url" >/dev/null
result=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$root/bench/webhook/post.lua" "$url" | grep '^RESULT')
rss_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
logged=$(wc -l <"$work/webhook.log")

val() { sed -E "s/.* $1=([0-9]+).*/\1/" <<<"$result"; }
requests=$(val requests)
duration_us=$(val duration_us)
errors=$(( $(val socket_errors) + $(val non2xx) ))
rps=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }

echo "requests=$requests log_lines=$logged cores=$(nproc)" >&2
echo "| date | commit | cores | connections | duration | admissions/s | p50 ms | p99 ms | errors | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f |\n' \
  "$(date -u +%Y-%m-%d)" "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$(nproc)" "$CONNECTIONS" "$DURATION" "$rps" "$(ms "$(val p50_us)")" "$(ms "$(val p99_us)")" \
  "$errors" "$(awk -v k="$rss_kib" 'BEGIN {print k / 1024}')"
