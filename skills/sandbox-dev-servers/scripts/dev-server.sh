#!/usr/bin/env bash
# Runs a dev server in the background so it never blocks an agent's turn.
#   dev-server.sh start PORT -- CMD [ARGS...]   start CMD (detached, own process group), wait until
#                                              http://127.0.0.1:PORT/ answers (up to $WAIT seconds, default 60)
#   dev-server.sh status PORT                  running or not, and whether it answers
#   dev-server.sh logs PORT [LINES]            the end of its log
#   dev-server.sh stop PORT                    SIGTERM its whole group, SIGKILL after 3 s
# State lives in /tmp/dev-PORT.pid and /tmp/dev-PORT.log.
set -euo pipefail

usage() { sed -n '2,8p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 port=$2
shift 2
pidfile=/tmp/dev-$port.pid
logfile=/tmp/dev-$port.log

alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
answers() { curl -sS -o /dev/null --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null; }

case $cmd in
start)
  [ "${1:-}" = "--" ] && shift
  [ $# -ge 1 ] || usage
  if alive; then echo "already running (pid $(cat "$pidfile")), log $logfile"; exit 0; fi
  if ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE "[:.]$port\$"; then
    echo "port $port is already taken:" >&2; ss -ltnp 2>/dev/null | grep -w ":$port" >&2 || true; exit 1
  fi
  setsid nohup "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 "${WAIT:-60}"); do
    if answers; then echo "up: http://127.0.0.1:$port/ (pid $(cat "$pidfile"), log $logfile)"; exit 0; fi
    if ! alive; then echo "the server exited; last lines of $logfile:" >&2; tail -n 40 "$logfile" >&2; exit 1; fi
    sleep 1
  done
  echo "still not answering on port $port after ${WAIT:-60} s; it keeps running. Last lines of $logfile:" >&2
  tail -n 40 "$logfile" >&2
  exit 1
  ;;
status)
  if alive; then
    if answers; then echo "running (pid $(cat "$pidfile")), answering on $port"; else echo "running (pid $(cat "$pidfile")), not answering on $port yet"; fi
  else
    echo "not running"; exit 1
  fi
  ;;
logs)
  tail -n "${1:-100}" "$logfile"
  ;;
stop)
  if ! alive; then echo "not running"; rm -f "$pidfile"; exit 0; fi
  pid=$(cat "$pidfile")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in 1 2 3; do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "stopped"
  ;;
*) usage ;;
esac
