#!/usr/bin/env bash
# Starts etsi_test_server, waits for its info file, runs a client suite with the info file as
# its last argument, stops the server (SIGTERM) and returns the suite's exit status (or 1 when
# the server did not exit cleanly: a crash or a sanitizer report).
#   run_client_suite.sh <etsi_test_server> <suite command...>
set -euo pipefail
server=$1
shift
work=$(mktemp -d "${TMPDIR:-/tmp}/cvqkd-etsi-suite-XXXXXX")
info=$work/info.json
"$server" "$info" --dir "$work/kmes" &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  [[ -f $info ]] && break
  kill -0 "$pid" 2>/dev/null || { echo "run_client_suite: etsi_test_server exited before it was ready" >&2; exit 1; }
  sleep 0.1
done
[[ -f $info ]] || { echo "run_client_suite: etsi_test_server not ready after 30 s" >&2; exit 1; }
set +e
"$@" "$info"
suite=$?
kill -TERM "$pid"
wait "$pid"
server=$?
trap 'rm -rf "$work"' EXIT
if ((server != 0)); then
  echo "run_client_suite: etsi_test_server exited with status $server after SIGTERM (crash or sanitizer report above)" >&2
  ((suite != 0)) || suite=1
fi
exit "$suite"
