#!/usr/bin/env bash
# Memory and connection bounds of `s3-seed webhook` under a hostile or
# unlucky load, against the Deployment's 128 MiB memory limit. Not a test:
# it prints what it measured (peak RSS from /proc/PID/status VmHWM) and
# fails when the peak is over LIMIT_MIB or idle connections were not closed.
#
#   bench/webhook/memory.sh                       # this tree's release binary
#   BIN=/path/to/old/s3-seed LABEL=old bench/webhook/memory.sh   # another build
#   REVIEWS= HOLD=0 FLOOD_HOLD=20 bench/webhook/memory.sh      # connections only
#
# Phases, one webhook process with the production defaults:
#  1. HOLD idle TLS connections that finished their handshake (default: the
#     connection limit less the reviewers), kept while
#  2. ROUNDS times, for every one of REVIEWS (shape:MiB) at the same time,
#     REVIEWERS clients each POST an UPDATE review (object and oldObject of
#     that size): bulk in app containers (never decoded: the largest
#     realistic case, and the largest body the API server sends), in
#     annotations or in init containers (decoded; 3 MiB of them are over
#     the decode budget and denied, 0.18 MiB is just under it);
#  3. curl --data-binary (no Expect) of a 9 MiB body must read a 413;
#  4. IDLE_CONNECTIONS TLS connections at once: how many are served within
#     5 s, and whether every one is closed once idle for the timeout.
# Takes about three minutes with the default 60 s idle timeout.
# Needs python3 and curl; openssl only if `s3-seed certs` is unavailable.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PORT=${PORT:-18444}
REVIEWS=${REVIEWS-containers:3 annotations:3 init:3 init:0.18}
REVIEWERS=${REVIEWERS:-8}
ROUNDS=${ROUNDS:-3}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-3000}
IDLE_TIMEOUT_SECS=${IDLE_TIMEOUT_SECS:-60}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-256}
shapes=$(wc -w <<<"$REVIEWS")
HOLD=${HOLD:-$((MAX_CONNECTIONS - REVIEWERS * shapes))}
FLOOD_HOLD=${FLOOD_HOLD:-5}
LIMIT_MIB=${LIMIT_MIB:-128}
clients=$root/bench/webhook/clients.py

if [[ -z ${BIN:-} ]]; then
  echo "building the release binary..." >&2
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
  BIN=$root/target/release/s3-seed
fi

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
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

if ! "$BIN" certs --service localhost --namespace bench --out "$work/certs" >/dev/null 2>&1; then
  mkdir -p "$work/certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$work/certs/tls.key" -out "$work/certs/tls.crt" 2>/dev/null
fi

echo "generating the reviews..." >&2
for review in $REVIEWS; do
  python3 "$clients" review --shape "${review%%:*}" --object-mib "${review#*:}" \
    --out "$work/$review.json" >&2
done
head -c $((9 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$work/too-big.json"

# Limits by environment, so that an older binary without the flags still
# starts (and shows what it does without them).
S3_SEED_IDLE_TIMEOUT_SECS=$IDLE_TIMEOUT_SECS S3_SEED_MAX_CONNECTIONS=$MAX_CONNECTIONS \
  RUST_LOG=${RUST_LOG:-info} "$BIN" --log-format json webhook \
  --listen "127.0.0.1:$PORT" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" \
  --shutdown-delay-secs 0 --image s3-seed:bench 2>"$work/webhook.log" &
pid=$!
for _ in $(seq 100); do
  curl -skf "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
kib() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$pid/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
echo "binary: $BIN" >&2
echo "started: RSS $(mib "$(kib VmRSS)") MiB" >&2

# 1 + 2: idle connections held while the largest reviews run.
echo '{"server_rss_kib": 0, "open_past_idle_timeout": 0}' >"$work/held.json"
holder=
if ((HOLD > 0)); then
  python3 "$clients" idle --port "$PORT" --count "$HOLD" --pid "$pid" --idle "$IDLE_TIMEOUT_SECS" \
    --hold 3 --wait $((IDLE_TIMEOUT_SECS + 30)) >"$work/held.json" &
  holder=$!
  sleep 4
fi
for round in $(seq "$ROUNDS"); do
  reviewers=()
  for review in $REVIEWS; do
    python3 "$clients" reviews --port "$PORT" --file "$work/$review.json" \
      --count "$REVIEWERS" --pid "$pid" >"$work/round-$round-$review.json" &
    reviewers+=($!)
  done
  for p in "${reviewers[@]}"; do wait "$p"; done
  for review in $REVIEWS; do
    echo "round $round, $review: $(cat "$work/round-$round-$review.json")" >&2
  done
done
reviews_hwm=$(kib VmHWM)
[[ -n $holder ]] && wait "$holder"
echo "held idle: $(cat "$work/held.json")" >&2

# 3: a body over the limit reaches curl as a 413.
code=$(curl -sk -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
  -H 'Expect:' --data-binary "@$work/too-big.json" "https://127.0.0.1:$PORT/mutate" || true)
echo "curl --data-binary of 9 MiB: HTTP $code" >&2

# 4: many connections at once.
echo '{"handshakes_done": 0, "open_past_idle_timeout": 0, "server_rss_kib": 0}' >"$work/flood.json"
((IDLE_CONNECTIONS > 0)) && python3 "$clients" idle --port "$PORT" --count "$IDLE_CONNECTIONS" --pid "$pid" --idle "$IDLE_TIMEOUT_SECS" \
  --hold "$FLOOD_HOLD" --wait $((IDLE_TIMEOUT_SECS + 30)) >"$work/flood.json"
echo "flood: $(cat "$work/flood.json")" >&2

hwm=$(kib VmHWM)
rss=$(kib VmRSS)
jq_() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }
flood_served=$(jq_ "$work/flood.json" handshakes_done)
flood_late=$(jq_ "$work/flood.json" open_past_idle_timeout)
flood_rss=$(jq_ "$work/flood.json" server_rss_kib)
held_rss=$(jq_ "$work/held.json" server_rss_kib)
held_late=$(jq_ "$work/held.json" open_past_idle_timeout)
late=$((held_late + flood_late))
echo "| date | binary | RSS, $HOLD idle MiB | peak RSS with reviews MiB | RSS, $IDLE_CONNECTIONS connecting MiB | served of $IDLE_CONNECTIONS in $FLOOD_HOLD s | open past the idle timeout | 9 MiB body via curl | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
  "$(date -u +%Y-%m-%d)" "${LABEL:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}" \
  "$(mib "$held_rss")" "$(mib "$reviews_hwm")" "$(mib "$flood_rss")" "$flood_served" "$late" \
  "$code" "$(mib "$hwm")"
echo "final RSS $(mib "$rss") MiB" >&2

fail=0
if ((hwm > LIMIT_MIB * 1024)); then
  echo "FAIL: peak RSS $(mib "$hwm") MiB is over ${LIMIT_MIB} MiB" >&2
  fail=1
fi
if ((late > 0)); then
  echo "FAIL: $late connections stayed open past the idle timeout" >&2
  fail=1
fi
if [[ $code != 413 ]]; then
  echo "FAIL: curl did not read the 413 (got '$code')" >&2
  fail=1
fi
exit "$fail"
