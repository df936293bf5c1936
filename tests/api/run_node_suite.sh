#!/usr/bin/env bash
# Runs an ETSI GS QKD 014 client suite against real `cvqkd node` processes: generates a network
# of three sites on 127.0.0.1 (KME_A with sae_a1 sae_a2, KME_B with sae_b1 sae_b2, KME_Z with
# sae_z; one 1 km link KME_A-KME_B; KME_Z has no link and is never started, so sae_z has no
# route), issues the extra certificates the suites use (sae_x: an SAE of no node, op1: an
# operator, a foreign CA with its own sae_a1), starts KME_A and KME_B, waits until both hold
# link key, writes the info.json the suites read (the shape etsi_test_server writes), runs the
# suite with it as its last argument, stops both nodes with SIGTERM and requires both to exit 0.
#   run_node_suite.sh <cvqkd binary> <suite command...>
# Exits with the suite's status (1 when a node did not start, did not become ready or did not
# exit cleanly). Set CVQKD_KEEP_SUITE_DIR=1 to keep the network directory for inspection.
set -euo pipefail
if (($# < 2)); then
  echo "usage: run_node_suite.sh <cvqkd binary> <suite command...>" >&2
  exit 2
fi
cvqkd=$(realpath "$1")
shift
ready_timeout_s=${CVQKD_SUITE_READY_TIMEOUT:-600}
# Link key both nodes must hold before the suite starts: the suites take about 110 000 bits
# (the Python suite's concurrency case alone 288 keys of 256 bits); the links keep producing.
ready_pool_bits=${CVQKD_SUITE_READY_BITS:-450000}

work=$(mktemp -d "${TMPDIR:-/tmp}/cvqkd-node-suite-XXXXXX")
net=$work/net
declare -A pid=()

log_tails() {
  for n in KME_A KME_B; do
    [[ -f $work/$n.log ]] || continue
    echo "---- last lines of $n's log ($work/$n.log) ----" >&2
    tail -n 40 "$work/$n.log" >&2
  done
}
cleanup() {
  for n in "${!pid[@]}"; do kill -TERM "${pid[$n]}" 2>/dev/null || true; done
  for n in "${!pid[@]}"; do wait "${pid[$n]}" 2>/dev/null || true; done
  if [[ ${CVQKD_KEEP_SUITE_DIR:-0} == 1 ]]; then echo "run_node_suite: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
die() {
  echo "run_node_suite: $*" >&2
  log_tails
  exit 1
}

# Three nodes take base..base+5 (node i: base+2i inter-node, base+2i+1 API). Random even base in
# 20000..39990 whose six ports nobody listens on, so that parallel ctest runs do not collide.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base=""
for _ in $(seq 1 50); do
  p=$((20000 + 2 * (RANDOM % 9995)))
  free=1
  for q in $(seq "$p" $((p + 5))); do
    if port_busy "$q"; then free=0; break; fi
  done
  if ((free)); then base=$p; break; fi
done
[[ -n $base ]] || die "no six free ports found in 20000..39999"

cat >"$work/topology.toml" <<'EOF'
# run_node_suite.sh: the two-KME network of the ETSI client suites, plus KME_Z (no link: no route).
[network]
name = "ETSI client suites"

[[nodes]]
id = "KME_A"
saes = ["sae_a1", "sae_a2"]
[[nodes]]
id = "KME_B"
saes = ["sae_b1", "sae_b2"]
[[nodes]]
id = "KME_Z"
saes = ["sae_z"]

[[links]]
id = "a-b"
a = "KME_A"
b = "KME_B"
length_km = 1
loss_db = 1.2
profile = "highrate_metro"
block_symbols = 1_000_000
frame_symbols = 131_072
beta = 0.8
short_codes = true
pool_max_bits = 2_000_000
EOF

"$cvqkd" network generate --topology "$work/topology.toml" --dir "$net" --base-port "$base" >"$work/generate.log" 2>&1 ||
  { cat "$work/generate.log" >&2; die "cvqkd network generate failed"; }
pki=$net/pki
"$cvqkd" pki issue --dir "$pki" --sae sae_x >/dev/null 2>"$work/pki.err" || { cat "$work/pki.err" >&2; die "pki issue --sae sae_x failed"; }
"$cvqkd" pki issue --dir "$pki" --operator op1 >/dev/null 2>"$work/pki.err" || { cat "$work/pki.err" >&2; die "pki issue --operator op1 failed"; }
"$cvqkd" pki init --dir "$work/foreign" --node KME_A --sae sae_a1@KME_A >/dev/null 2>"$work/pki.err" ||
  { cat "$work/pki.err" >&2; die "pki init of the foreign CA failed"; }

api_port() { sed -n 's/^api_listen = "127\.0\.0\.1:\([0-9]*\)"$/\1/p' "$net/$1/node.toml"; }
port_a=$(api_port KME_A)
port_b=$(api_port KME_B)
[[ -n $port_a && -n $port_b ]] || die "no api_listen in the generated node.toml files"

for n in KME_A KME_B; do
  (cd "$net/$n" && exec "$cvqkd" node --config node.toml) >"$work/$n.log" 2>&1 &
  pid[$n]=$!
done

# get PORT CERT KEY TARGET -> the body on stdout; the status code in $work/code
get() {
  curl -sS --max-time 10 --cacert "$pki/ca/ca.crt" --cert "$2" --key "$3" -o "$work/reply" -w '%{http_code}' \
    "https://127.0.0.1:$1$4" >"$work/code" 2>/dev/null || echo 000 >"$work/code"
  cat "$work/reply" 2>/dev/null || true
  rm -f "$work/reply"
}
op=("$pki/operators/op1/operator.crt" "$pki/operators/op1/operator.key")
sae() { echo "$pki/saes/$1/sae.crt" "$pki/saes/$1/sae.key"; }
# The smallest pool_bits of the node's links (0 when it does not answer or has no link).
pool_bits() {
  get "$1" "${op[@]}" /admin/status | grep -o '"pool_bits":[0-9]*' | cut -d: -f2 | sort -n | head -n 1 || true
}

t0=$SECONDS
while :; do
  for n in KME_A KME_B; do kill -0 "${pid[$n]}" 2>/dev/null || die "$n exited before it was ready"; done
  a=$(pool_bits "$port_a")
  b=$(pool_bits "$port_b")
  ((${a:-0} >= ready_pool_bits && ${b:-0} >= ready_pool_bits)) && break
  ((SECONDS - t0 < ready_timeout_s)) ||
    die "the link held ${a:-0} (KME_A) / ${b:-0} (KME_B) bits after ${ready_timeout_s} s, below $ready_pool_bits"
  sleep 1
done
# End to end once: a key relayed from KME_A to KME_B and fetched there (the route may lag the pool).
while :; do
  body=$(get "$port_a" $(sae sae_a1) /api/v1/keys/sae_b1/enc_keys)
  if [[ $(cat "$work/code") == 200 ]]; then
    id=$(grep -o '"key_ID":"[0-9a-f-]*"' <<<"$body" | cut -d'"' -f4 || true)
    body=$(get "$port_b" $(sae sae_b1) "/api/v1/keys/sae_a1/dec_keys?key_ID=$id")
    [[ $(cat "$work/code") == 200 ]] || die "KME_B did not deliver the relayed key $id: $(cat "$work/code") $body"
    break
  fi
  ((SECONDS - t0 < ready_timeout_s)) || die "no key from KME_A to KME_B after ${ready_timeout_s} s: $(cat "$work/code") $body"
  sleep 1
done
status=$(get "$port_a" $(sae sae_a1) /api/v1/keys/sae_b1/status)
[[ $(cat "$work/code") == 200 ]] || die "GET status: $(cat "$work/code") $status"
declare -A lim=()
for f in key_size min_key_size max_key_size max_key_per_request max_key_count max_SAE_ID_count; do
  lim[$f]=$(grep -o "\"$f\":[0-9]*" <<<"$status" | cut -d: -f2 || true)
  [[ -n ${lim[$f]} ]] || die "GET status has no $f: $status"
done
echo "run_node_suite: nodes ready after $((SECONDS - t0)) s (ports $base..$((base + 5)))"

info=$work/info.json
client() { printf '    "%s": {"cert": "%s", "key": "%s"}' "$1" "$2" "$3"; }
{
  echo '{'
  echo "  \"ca\": \"$pki/ca/ca.crt\","
  echo "  \"foreign_ca\": \"$work/foreign/ca/ca.crt\","
  echo "  \"kmes\": {\"KME_A\": {\"host\": \"127.0.0.1\", \"port\": $port_a}, \"KME_B\": {\"host\": \"127.0.0.1\", \"port\": $port_b}},"
  echo '  "clients": {'
  for s in sae_a1 sae_a2 sae_b1 sae_b2 sae_z sae_x; do client "$s" $(sae "$s"); echo ','; done
  client op1 "${op[@]}"; echo ','
  client foreign_sae_a1 "$work/foreign/saes/sae_a1/sae.crt" "$work/foreign/saes/sae_a1/sae.key"; echo
  echo '  },'
  echo '  "saes": {"sae_a1": "KME_A", "sae_a2": "KME_A", "sae_b1": "KME_B", "sae_b2": "KME_B", "sae_z": "KME_Z"},'
  printf '  "limits": {"key_size": %s, "min_key_size": %s, "max_key_size": %s, "max_key_per_request": %s, ' \
    "${lim[key_size]}" "${lim[min_key_size]}" "${lim[max_key_size]}" "${lim[max_key_per_request]}"
  printf '"max_key_count": %s, "max_SAE_ID_count": %s}\n' "${lim[max_key_count]}" "${lim[max_SAE_ID_count]}"
  echo '}'
} >"$info"

set +e
suite_t0=$SECONDS
"$@" "$info"
suite=$?
echo "run_node_suite: suite exited $suite after $((SECONDS - suite_t0)) s"
bad=0
for n in KME_A KME_B; do kill -TERM "${pid[$n]}" 2>/dev/null; done
for n in KME_A KME_B; do
  for _ in $(seq 1 300); do kill -0 "${pid[$n]}" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "${pid[$n]}" 2>/dev/null; then
    echo "run_node_suite: $n did not stop within 30 s of SIGTERM; killing it" >&2
    kill -KILL "${pid[$n]}" 2>/dev/null
    bad=1
  fi
  wait "${pid[$n]}"
  rc=$?
  unset "pid[$n]"
  if ((rc != 0)); then
    echo "run_node_suite: $n exited with status $rc after SIGTERM (crash or sanitizer report in its log)" >&2
    bad=1
  fi
done
if ((bad)); then
  log_tails
  ((suite != 0)) || suite=1
elif ((suite != 0)); then
  log_tails
fi
exit "$suite"
