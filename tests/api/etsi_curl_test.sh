#!/usr/bin/env bash
# ETSI GS QKD 014 client suite with curl (and jq for JSON), against etsi_test_server
# (run_client_suite.sh) or two `cvqkd node` processes (run_node_suite.sh).
#   etsi_curl_test.sh <info.json>      (info.json: written by either runner)
# Every call of V1.1.1 in its GET and POST forms, the refusals the spec fixes and those
# docs/etsi-014-decisions.md decides, and the TLS refusals (no certificate, foreign CA, TLS 1.1).
set -uo pipefail
info=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/cvqkd-curl-XXXXXX")
trap 'rm -rf "$work"' EXIT
ca=$(jq -r .ca "$info")
port_of() { jq -r ".kmes.$1.port" "$info"; }
cert_of() { jq -r ".clients.$1.cert" "$info"; }
key_of() { jq -r ".clients.$1.key" "$info"; }
NOT_FOUND="one or more keys specified are not found on KME"
failures=0
current=""

fail() { echo "FAILED [$current] $*"; failures=$((failures + 1)); }
begin() { current=$1; }

# call KME WHO METHOD TARGET [BODY] -> sets $status and $body (curl's exit code in $rc)
call() {
  local kme=$1 who=$2 method=$3 target=$4
  local args=(-sS --max-time 20 --cacert "$ca" --cert "$(cert_of "$who")" --key "$(key_of "$who")"
              -o "$work/body" -w '%{http_code}' -X "$method")
  if (($# > 4)); then args+=(-H 'Content-Type: application/json' --data-binary "$5"); fi
  status=$(curl "${args[@]}" "https://127.0.0.1:$(port_of "$kme")$target" 2>"$work/err")
  rc=$?
  body=$(cat "$work/body" 2>/dev/null || true)
  rm -f "$work/body"
}
expect_status() {  # expect_status CODE [MESSAGE]
  [[ $status == "$1" ]] || { fail "status $status, expected $1: $body"; return 1; }
  if (($# > 1)); then
    local m
    m=$(jq -r .message <<<"$body")
    [[ $m == "$2" ]] || { fail "message '$m', expected '$2'"; return 1; }
  fi
  return 0
}
expect_eq() { [[ $1 == "$2" ]] || fail "$3: '$1' != '$2'"; }

begin status
call KME_A sae_a1 GET /api/v1/keys/sae_b1/status
expect_status 200
expect_eq "$(jq -r '.source_KME_ID + " " + .target_KME_ID + " " + .master_SAE_ID + " " + .slave_SAE_ID' <<<"$body")" \
  "KME_A KME_B sae_a1 sae_b1" "status names"
expect_eq "$(jq -r .key_size <<<"$body")" "$(jq -r .limits.key_size "$info")" "key_size"
expect_eq "$(jq -r .max_key_per_request <<<"$body")" "$(jq -r .limits.max_key_per_request "$info")" "max_key_per_request"

begin enc_keys_get_simple
call KME_A sae_a1 GET '/api/v1/keys/sae_b1/enc_keys?number=1&size=256'
expect_status 200
id1=$(jq -r '.keys[0].key_ID' <<<"$body")
key1=$(jq -r '.keys[0].key' <<<"$body")
expect_eq "$(base64 -d <<<"$key1" | wc -c)" 32 "256-bit key length"
[[ $id1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] || fail "key_ID '$id1' is not a UUIDv4"

begin dec_keys_get
call KME_B sae_b1 GET "/api/v1/keys/sae_a1/dec_keys?key_ID=$id1"
expect_status 200 && expect_eq "$(jq -r '.keys[0].key' <<<"$body")" "$key1" "same key at the slave's KME"

begin dec_keys_twice
call KME_B sae_b1 GET "/api/v1/keys/sae_a1/dec_keys?key_ID=$id1"
expect_status 400 "$NOT_FOUND"

begin enc_keys_post_and_dec_keys_post
call KME_A sae_a1 POST /api/v1/keys/sae_b1/enc_keys '{"number": 3, "size": 512}'
expect_status 200
expect_eq "$(jq '.keys | length' <<<"$body")" 3 "number of keys"
ids=$(jq -c '{key_IDs: [.keys[] | {key_ID}]}' <<<"$body")
keys=$(jq -c '[.keys[].key]' <<<"$body")
call KME_B sae_b1 POST /api/v1/keys/sae_a1/dec_keys "$ids"
expect_status 200 && expect_eq "$(jq -c '[.keys[].key]' <<<"$body")" "$keys" "POST dec_keys keys"

begin empty_post_body_means_defaults
call KME_A sae_a1 POST /api/v1/keys/sae_b1/enc_keys ''
expect_status 200
expect_eq "$(jq '.keys | length' <<<"$body")" 1 "default number"
expect_eq "$(jq -r '.keys[0].key' <<<"$body" | base64 -d | wc -c)" "$(($(jq -r .limits.key_size "$info") / 8))" "default size"

begin dec_keys_by_third_sae
call KME_A sae_a1 GET /api/v1/keys/sae_b1/enc_keys
id=$(jq -r '.keys[0].key_ID' <<<"$body")
call KME_B sae_b2 GET "/api/v1/keys/sae_a1/dec_keys?key_ID=$id"
expect_status 401
expect_eq "$body" "" "401 body"

begin unknown_and_malformed_key_id
call KME_B sae_b1 GET "/api/v1/keys/sae_a1/dec_keys?key_ID=$(cat /proc/sys/kernel/random/uuid)"
expect_status 400 "$NOT_FOUND"
call KME_B sae_b1 GET "/api/v1/keys/sae_a1/dec_keys?key_ID=xyz"
expect_status 400 "$NOT_FOUND"

begin size_not_multiple_of_8
call KME_A sae_a1 GET '/api/v1/keys/sae_b1/enc_keys?size=250'
expect_status 400 "size shall be a multiple of 8"
call KME_A sae_a1 POST /api/v1/keys/sae_b1/enc_keys '{"size": 9}'
expect_status 400 "size shall be a multiple of 8"

begin number_above_max
call KME_A sae_a1 GET "/api/v1/keys/sae_b1/enc_keys?number=$(($(jq -r .limits.max_key_per_request "$info") + 1))"
expect_status 400 "number shall not exceed max_key_per_request"

begin size_out_of_range
call KME_A sae_a1 POST /api/v1/keys/sae_b1/enc_keys "{\"size\": $(($(jq -r .limits.max_key_size "$info") + 8))}"
expect_status 400 "size shall be between min_key_size and max_key_size"
call KME_A sae_a1 GET "/api/v1/keys/sae_b1/enc_keys?size=$(($(jq -r .limits.min_key_size "$info") - 8))"
expect_status 400 "size shall be between min_key_size and max_key_size"

begin unknown_slave
call KME_A sae_a1 GET /api/v1/keys/nobody/enc_keys
expect_status 400 "unknown SAE: nobody is not served by any KME of this network"

begin malformed_json
call KME_A sae_a1 POST /api/v1/keys/sae_b1/enc_keys '{"number": '
expect_status 400
[[ $(jq -r .message <<<"$body") == "malformed JSON"* ]] || fail "message: $body"

begin unknown_mandatory_extension
call KME_A sae_a1 POST /api/v1/keys/sae_b1/enc_keys '{"extension_mandatory": {"abc_route_type": "direct"}}'
expect_status 400 "not all extension_mandatory parameters are supported"
expect_eq "$(jq -c .details <<<"$body")" '[{"extension_mandatory_unsupported":"abc_route_type is not supported"}]' "details"
call KME_A sae_a1 POST /api/v1/keys/sae_b1/enc_keys '{"extension_mandatory": {"cvqkd_route_type": "multipath"}}'
expect_status 400 "not all extension_mandatory request options could be met"
call KME_A sae_a1 POST /api/v1/keys/sae_b1/enc_keys '{"extension_mandatory": {"cvqkd_route_type": "direct"}}'
expect_status 200

begin no_route_is_503
call KME_A sae_a1 GET /api/v1/keys/sae_z/enc_keys
expect_status 503

begin operator_role_is_401
call KME_A op1 GET /api/v1/keys/sae_b1/status
expect_status 401

# TLS refusals: curl must fail to get any HTTP status, with the server's alert.
tls_refused() {  # tls_refused NAME EXPECTED_STDERR_REGEX CURL_ARGS...
  current=$1
  local pattern=$2
  shift 2
  local out err
  out=$(curl -sS --max-time 20 --cacert "$ca" -o /dev/null -w '%{http_code}' "$@" \
    "https://127.0.0.1:$(port_of KME_A)/api/v1/keys/sae_b1/status" 2>"$work/err")
  local code=$?
  err=$(cat "$work/err")
  ((code != 0)) || fail "the request was answered ($out); it must be refused"
  [[ $err =~ $pattern ]] || fail "curl exit $code: '$err' does not match /$pattern/"
}
tls_refused no_client_certificate_tls13 'certificate required|reset by peer' --tlsv1.3
tls_refused no_client_certificate_tls12 'handshake failure' --tlsv1.2 --tls-max 1.2
tls_refused foreign_ca_certificate 'unknown ca|reset by peer' \
  --cert "$(cert_of foreign_sae_a1)" --key "$(key_of foreign_sae_a1)"
# TLS 1.1 really offered (SECLEVEL 0 re-enables it in OpenSSL 3); the server answers protocol_version.
tls_refused tls_1_1 'alert protocol version' --tlsv1.1 --tls-max 1.1 --ciphers 'DEFAULT:@SECLEVEL=0' \
  --cert "$(cert_of sae_a1)" --key "$(key_of sae_a1)"

if ((failures)); then
  echo "etsi_curl_test: $failures check(s) failed"
  exit 1
fi
echo "etsi_curl_test: all checks passed"
