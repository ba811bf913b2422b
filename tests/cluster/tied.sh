#!/usr/bin/env bash
# Runs CMD ARGS... tied to this script's stdin: when stdin reaches
# end-of-file (the test process that holds the other end of the pipe closed it,
# or exited, or was killed), or on SIGTERM or SIGINT, CMD gets SIGTERM, and
# SIGKILL 5 s later. So a long-running process that a test starts this way
# never outlives the test process. Exits with CMD's status when CMD exits by
# itself, 0 when it was stopped.
#
# Usage: bash tests/cluster/tied.sh CMD ARGS... <PIPE
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: tied.sh CMD ARGS..." >&2; exit 2; }
child=
watcher=
stop() {
  trap - TERM INT
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  [ -z "$watcher" ] || kill "$watcher" 2>/dev/null
  exit 0
}
trap stop TERM INT
"$@" </dev/null &
child=$!
(while read -r _; do :; done; kill -TERM $$) <&0 &
watcher=$!
wait "$child"
rc=$?
# CMD exited by itself. The watcher, when killed, may still signal us first.
trap '' TERM INT
kill "$watcher" 2>/dev/null
exit "$rc"
