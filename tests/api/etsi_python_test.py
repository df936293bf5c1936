#!/usr/bin/env python3
"""ETSI GS QKD 014 client suite using only Python's standard library (http.client + ssl).

Runs against etsi_test_server (run_client_suite.sh) or two `cvqkd node` processes
(run_node_suite.sh): two KMEs, KME_A and KME_B, on loopback. Every response body is
validated against the schemas of docs/etsi-qkd-014.openapi.json with a small validator for the
subset of JSON Schema the document uses ($ref, type, required, properties,
additionalProperties, items, enum, minimum, minLength, minItems, min/maxProperties, format uuid
and byte).

usage: etsi_python_test.py <openapi.json> <info.json>     (info.json: written by either runner)
"""
import base64
import binascii
import http.client
import json
import re
import ssl
import sys
import threading
import traceback
import uuid
import warnings

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
NOT_FOUND = "one or more keys specified are not found on KME"


# --- OpenAPI response validation ----------------------------------------------------------

class SchemaError(AssertionError):
    pass


class OpenApi:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.routes = []  # (regex, method, operation)
        for template, item in self.doc["paths"].items():
            rx = re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$")
            for method, op in item.items():
                self.routes.append((rx, method.upper(), op))

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part]
        return node

    def validate_response(self, method, path, status, body, content_type):
        ops = [op for rx, m, op in self.routes if m == method and rx.match(path)]
        if not ops:
            raise SchemaError(f"{method} {path} is not in the OpenAPI document")
        responses = ops[0]["responses"]
        if str(status) not in responses:
            raise SchemaError(f"{method} {path}: status {status} is not documented")
        resp = self.resolve(responses[str(status)])
        content = resp.get("content")
        if content is None:
            if body:
                raise SchemaError(f"{method} {path} {status}: documented without body, got {body[:80]!r}")
            return
        if not content_type.startswith("application/json"):
            raise SchemaError(f"{method} {path} {status}: content type {content_type!r}, expected application/json")
        self.validate(content["application/json"]["schema"], json.loads(body), "$")

    def validate(self, schema, value, where):
        schema = self.resolve(schema)
        t = schema.get("type")
        checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
                  "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
                  "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)}
        if t is not None and not checks[t](value):
            raise SchemaError(f"{where}: expected {t}, got {value!r}")
        if "enum" in schema and value not in schema["enum"]:
            raise SchemaError(f"{where}: {value!r} not in {schema['enum']}")
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError(f"{where}: {value} < {schema['minimum']}")
        if t == "string":
            if len(value) < schema.get("minLength", 0):
                raise SchemaError(f"{where}: shorter than {schema['minLength']}")
            fmt = schema.get("format")
            if fmt == "uuid" and not UUID_RE.match(value):
                raise SchemaError(f"{where}: {value!r} is not a UUID")
            if fmt == "byte":
                try:
                    base64.b64decode(value, validate=True)
                except binascii.Error as e:
                    raise SchemaError(f"{where}: not base64: {e}") from None
        if t == "array":
            if len(value) < schema.get("minItems", 0):
                raise SchemaError(f"{where}: fewer than {schema['minItems']} items")
            for i, v in enumerate(value):
                if "items" in schema:
                    self.validate(schema["items"], v, f"{where}[{i}]")
        if t == "object":
            for name in schema.get("required", []):
                if name not in value:
                    raise SchemaError(f"{where}: missing required {name}")
            props = schema.get("properties", {})
            for name, v in value.items():
                if name in props:
                    self.validate(props[name], v, f"{where}.{name}")
                elif schema.get("additionalProperties", True) is False:
                    raise SchemaError(f"{where}: unexpected property {name}")
            if len(value) < schema.get("minProperties", 0) or len(value) > schema.get("maxProperties", 1 << 30):
                raise SchemaError(f"{where}: wrong number of properties")


# --- client ---------------------------------------------------------------------------------

class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class Client:
    def __init__(self, info, api):
        self.info, self.api = info, api

    def context(self, who="sae_a1", ca=None, minimum=ssl.TLSVersion.TLSv1_2, maximum=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca or self.info["ca"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 on purpose
            if minimum < ssl.TLSVersion.TLSv1_2:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = minimum
            if maximum is not None:
                ctx.maximum_version = maximum
        if who is not None:
            c = self.info["clients"][who]
            ctx.load_cert_chain(c["cert"], c["key"])
        return ctx

    def connect(self, kme="KME_A", **ctx_args):
        k = self.info["kmes"][kme]
        return http.client.HTTPSConnection(k["host"], k["port"], context=self.context(**ctx_args), timeout=20)

    def request(self, conn, method, target, body=None, validate=True):
        headers = {}
        if body is not None:
            body = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, target, body=body, headers=headers)
        r = conn.getresponse()
        reply = Reply(r.status, r.headers, r.read().decode())
        if validate:
            self.api.validate_response(method, target.split("?")[0], reply.status, reply.body,
                                       r.headers.get("Content-Type", ""))
        return reply

    def call(self, method, target, body=None, kme="KME_A", who="sae_a1", validate=True):
        conn = self.connect(kme, who=who)
        try:
            return self.request(conn, method, target, body, validate)
        finally:
            conn.close()


def keys_of(reply):
    return [(k["key_ID"], base64.b64decode(k["key"])) for k in reply.json()["keys"]]


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_status(reply, status, message=None):
    expect(reply.status == status, f"status {reply.status}, expected {status}: {reply.body[:300]}")
    if message is not None:
        got = reply.json()["message"]
        expect(got == message, f"message {got!r}, expected {message!r}")


# --- the suite ------------------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def status_call(c):
    r = c.call("GET", "/api/v1/keys/sae_b1/status")
    expect_status(r, 200)
    s = r.json()
    lim = c.info["limits"]
    expect(s["source_KME_ID"] == "KME_A" and s["target_KME_ID"] == "KME_B", s)
    expect(s["master_SAE_ID"] == "sae_a1" and s["slave_SAE_ID"] == "sae_b1", s)
    for f in ("key_size", "max_key_per_request", "max_key_size", "min_key_size", "max_key_count", "max_SAE_ID_count"):
        expect(s[f] == lim[f], f"{f}: {s[f]} != {lim[f]}")
    expect(0 <= s["stored_key_count"] <= s["max_key_count"], s)


@test
def enc_get_and_post_then_dec_get_and_post(c):
    size = c.info["limits"]["key_size"]
    got = []
    for method, target, body, n, bits in (
            ("GET", "/api/v1/keys/sae_b1/enc_keys", None, 1, size),
            ("GET", "/api/v1/keys/sae_b1/enc_keys?number=2&size=512", None, 2, 512),
            ("POST", "/api/v1/keys/sae_b1/enc_keys", "", 1, size),  # empty body: defaults
            ("POST", "/api/v1/keys/sae_b1/enc_keys", {}, 1, size),
            ("POST", "/api/v1/keys/sae_b1/enc_keys", {"number": 3, "size": 128}, 3, 128)):
        r = c.call(method, target, body)
        expect_status(r, 200)
        keys = keys_of(r)
        expect(len(keys) == n, f"{method} {target} {body!r}: {len(keys)} keys, expected {n}")
        expect(all(len(k) * 8 == bits for _, k in keys), f"{method} {target}: key sizes")
        got += keys
    # The slave fetches them at its own KME: one by GET, the rest by POST.
    first_id, first_key = got[0]
    r = c.call("GET", f"/api/v1/keys/sae_a1/dec_keys?key_ID={first_id}", kme="KME_B", who="sae_b1")
    expect_status(r, 200)
    expect(keys_of(r) == [(first_id, first_key)], "dec_keys GET returned other bytes")
    rest = got[1:]
    r = c.call("POST", "/api/v1/keys/sae_a1/dec_keys", {"key_IDs": [{"key_ID": i} for i, _ in rest]},
               kme="KME_B", who="sae_b1")
    expect_status(r, 200)
    expect(keys_of(r) == rest, "dec_keys POST returned other keys or order")


@test
def dec_keys_twice_is_not_found(c):
    (kid, _), = keys_of(c.call("GET", "/api/v1/keys/sae_b1/enc_keys"))
    expect_status(c.call("GET", f"/api/v1/keys/sae_a1/dec_keys?key_ID={kid}", kme="KME_B", who="sae_b1"), 200)
    expect_status(c.call("GET", f"/api/v1/keys/sae_a1/dec_keys?key_ID={kid}", kme="KME_B", who="sae_b1"), 400, NOT_FOUND)
    expect_status(c.call("POST", "/api/v1/keys/sae_a1/dec_keys", {"key_IDs": [{"key_ID": kid}]}, kme="KME_B",
                         who="sae_b1"), 400, NOT_FOUND)


@test
def dec_keys_by_a_third_sae_is_401(c):
    (kid, key), = keys_of(c.call("GET", "/api/v1/keys/sae_b1/enc_keys"))
    r = c.call("GET", f"/api/v1/keys/sae_a1/dec_keys?key_ID={kid}", kme="KME_B", who="sae_b2")
    expect_status(r, 401)
    expect(r.body == "", "401 carries no body")
    # The named slave still gets it afterwards.
    r = c.call("GET", f"/api/v1/keys/sae_a1/dec_keys?key_ID={kid}", kme="KME_B", who="sae_b1")
    expect_status(r, 200)
    expect(keys_of(r) == [(kid, key)], "slave got other bytes")


@test
def unknown_and_malformed_key_ids(c):
    for target in (f"/api/v1/keys/sae_a1/dec_keys?key_ID={uuid.uuid4()}",
                   "/api/v1/keys/sae_a1/dec_keys?key_ID=not-a-uuid"):
        expect_status(c.call("GET", target, kme="KME_B", who="sae_b1"), 400, NOT_FOUND)
    expect_status(c.call("POST", "/api/v1/keys/sae_a1/dec_keys", {"key_IDs": [{"key_ID": "1234"}]},
                         kme="KME_B", who="sae_b1"), 400, NOT_FOUND)
    expect_status(c.call("GET", "/api/v1/keys/sae_a1/dec_keys", kme="KME_B", who="sae_b1"), 400)
    expect_status(c.call("POST", "/api/v1/keys/sae_a1/dec_keys", "", kme="KME_B", who="sae_b1"), 400)


@test
def size_not_a_multiple_of_8(c):
    expect_status(c.call("GET", "/api/v1/keys/sae_b1/enc_keys?size=100"), 400, "size shall be a multiple of 8")
    expect_status(c.call("POST", "/api/v1/keys/sae_b1/enc_keys", {"size": 257}), 400, "size shall be a multiple of 8")


@test
def number_above_max_key_per_request(c):
    n = c.info["limits"]["max_key_per_request"] + 1
    r = c.call("POST", "/api/v1/keys/sae_b1/enc_keys", {"number": n})
    expect_status(r, 400, "number shall not exceed max_key_per_request")
    expect(r.json()["details"] == [{"max_key_per_request": str(n - 1)}], r.body)
    expect_status(c.call("GET", f"/api/v1/keys/sae_b1/enc_keys?number={n}"), 400)
    expect_status(c.call("GET", "/api/v1/keys/sae_b1/enc_keys?number=0"), 400)


@test
def size_out_of_range(c):
    lim = c.info["limits"]
    for size in (lim["min_key_size"] - 8, lim["max_key_size"] + 8):
        r = c.call("POST", "/api/v1/keys/sae_b1/enc_keys", {"size": size})
        expect_status(r, 400, "size shall be between min_key_size and max_key_size")
        expect(r.json()["details"] == [{"min_key_size": str(lim["min_key_size"])},
                                       {"max_key_size": str(lim["max_key_size"])}], r.body)


@test
def unknown_slave_sae(c):
    for method, target in (("GET", "/api/v1/keys/nobody/enc_keys"), ("GET", "/api/v1/keys/nobody/status")):
        r = c.call(method, target)
        expect_status(r, 400, "unknown SAE: nobody is not served by any KME of this network")
    r = c.call("POST", "/api/v1/keys/sae_b1/enc_keys", {"additional_slave_SAE_IDs": ["nobody"]})
    expect_status(r, 400, "unknown SAE: nobody is not served by any KME of this network")


@test
def malformed_json_and_unknown_fields(c):
    r = c.call("POST", "/api/v1/keys/sae_b1/enc_keys", '{"number": 1,')
    expect_status(r, 400)
    expect(r.json()["message"].startswith("malformed JSON"), r.body)
    expect_status(c.call("POST", "/api/v1/keys/sae_b1/enc_keys", "[1]"), 400)
    expect_status(c.call("POST", "/api/v1/keys/sae_b1/enc_keys", {"numbr": 1}), 400)
    expect_status(c.call("POST", "/api/v1/keys/sae_a1/dec_keys", "{oops", kme="KME_B", who="sae_b1"), 400)


@test
def extensions(c):
    r = c.call("POST", "/api/v1/keys/sae_b1/enc_keys", {"extension_mandatory": {"abc_qos": "gold"}})
    expect_status(r, 400, "not all extension_mandatory parameters are supported")
    expect(r.json()["details"] == [{"extension_mandatory_unsupported": "abc_qos is not supported"}], r.body)
    r = c.call("POST", "/api/v1/keys/sae_b1/enc_keys", {"extension_mandatory": {"cvqkd_route_type": "multipath"}})
    expect_status(r, 400, "not all extension_mandatory request options could be met")
    for body in ({"extension_mandatory": {"cvqkd_route_type": "relay"}},
                 {"extension_optional": {"cvqkd_route_type": "multipath", "abc_qos": "gold"}}):
        expect_status(c.call("POST", "/api/v1/keys/sae_b1/enc_keys", body), 200)


@test
def not_enough_key_material_is_503(c):
    r = c.call("GET", "/api/v1/keys/sae_z/enc_keys")
    expect_status(r, 503)
    # The test server names the missing route first; a node's relay wraps it in its retry report.
    m = r.json()["message"]
    expect(m.startswith("not enough key material: ") and "no route from KME_A to KME_Z" in m, r.body)


@test
def multicast_to_additional_slaves(c):
    r = c.call("POST", "/api/v1/keys/sae_b1/enc_keys", {"number": 2, "additional_slave_SAE_IDs": ["sae_b2", "sae_a2"]})
    expect_status(r, 200)
    keys = keys_of(r)
    body = {"key_IDs": [{"key_ID": i} for i, _ in keys]}
    for kme, who in (("KME_B", "sae_b1"), ("KME_B", "sae_b2"), ("KME_A", "sae_a2")):
        r = c.call("POST", "/api/v1/keys/sae_a1/dec_keys", body, kme=kme, who=who)
        expect_status(r, 200)
        expect(keys_of(r) == keys, f"{who} got other keys")


@test
def wrong_role_and_foreign_sae_are_401(c):
    for who in ("op1", "sae_x", "sae_b1"):  # operator role; SAE of no KME; SAE of the other KME
        r = c.call("GET", "/api/v1/keys/sae_b1/status", who=who)
        expect_status(r, 401)


@test
def keep_alive(c):
    conn = c.connect("KME_A", who="sae_a1")
    try:
        for _ in range(5):
            expect_status(c.request(conn, "GET", "/api/v1/keys/sae_b1/enc_keys?number=1&size=256"), 200)
        expect_status(c.request(conn, "GET", "/api/v1/keys/sae_b1/status"), 200)
    finally:
        conn.close()


def refused(c, reasons, **ctx_args):
    """Runs a status request; returns the ssl error reason (it must be refused)."""
    try:
        conn = c.connect("KME_A", **ctx_args)
        try:
            r = c.request(conn, "GET", "/api/v1/keys/sae_b1/status", validate=False)
        finally:
            conn.close()
    except ssl.SSLError as e:
        expect(e.reason in reasons, f"refused with {e.reason!r} ({e}), expected one of {reasons}")
        return e.reason
    except (ConnectionResetError, BrokenPipeError) as e:
        expect("RESET" in reasons, f"connection reset ({e}), expected one of {reasons}")
        return "RESET"
    raise AssertionError(f"request with {ctx_args} was answered {r.status}; it must be refused")


@test
def no_client_certificate(c):
    # TLS 1.3: the handshake completes at the client; the server's alert arrives at the first read.
    refused(c, {"TLSV13_ALERT_CERTIFICATE_REQUIRED", "RESET"}, who=None, minimum=ssl.TLSVersion.TLSv1_3)
    refused(c, {"SSLV3_ALERT_HANDSHAKE_FAILURE"}, who=None, minimum=ssl.TLSVersion.TLSv1_2,
            maximum=ssl.TLSVersion.TLSv1_2)


@test
def certificate_from_another_ca(c):
    refused(c, {"TLSV1_ALERT_UNKNOWN_CA", "RESET"}, who="foreign_sae_a1")
    refused(c, {"TLSV1_ALERT_UNKNOWN_CA"}, who="foreign_sae_a1", maximum=ssl.TLSVersion.TLSv1_2)


@test
def tls_1_1_is_refused_by_the_server(c):
    # The client really offers TLS 1.1 (SECLEVEL 0 re-enables it in OpenSSL 3); the server answers
    # with a protocol_version alert. A local refusal (no protocols available) would be another
    # reason and fails this check.
    reason = refused(c, {"TLSV1_ALERT_PROTOCOL_VERSION"}, who="sae_a1",
                     minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1)
    expect(reason == "TLSV1_ALERT_PROTOCOL_VERSION", reason)


@test
def concurrent_clients_never_share_keys(c):
    threads, rounds, per = 12, 6, 4
    results, errors = [], []
    lock = threading.Lock()

    def worker():
        try:
            conn = c.connect("KME_A", who="sae_a1")
            for _ in range(rounds):
                r = c.request(conn, "POST", "/api/v1/keys/sae_b1/enc_keys", {"number": per})
                expect_status(r, 200)
                with lock:
                    results.extend(keys_of(r))
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(repr(e))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    expect(not errors, f"worker errors: {errors[:3]}")
    expect(len(results) == threads * rounds * per, f"{len(results)} keys")
    expect(len({i for i, _ in results}) == len(results), "a key ID was delivered twice")
    expect(len({k for _, k in results}) == len(results), "the same key bytes were delivered twice")
    # And the slave's KME returns exactly these bytes.
    by_id = dict(results)
    ids = list(by_id)
    lim = c.info["limits"]["max_key_per_request"]
    conn = c.connect("KME_B", who="sae_b1")
    try:
        for i in range(0, len(ids), lim):
            r = c.request(conn, "POST", "/api/v1/keys/sae_a1/dec_keys",
                          {"key_IDs": [{"key_ID": k} for k in ids[i:i + lim]]})
            expect_status(r, 200)
            for kid, key in keys_of(r):
                expect(by_id[kid] == key, f"{kid}: the slave's KME returned other bytes")
    finally:
        conn.close()


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    api = OpenApi(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        info = json.load(f)
    c = Client(info, api)
    failed = []
    for t in TESTS:
        try:
            t(c)
            print(f"ok     {t.__name__}")
        except Exception:  # noqa: BLE001 - the suite reports every failure
            failed.append(t.__name__)
            print(f"FAILED {t.__name__}\n{traceback.format_exc()}")
    print(f"{len(TESTS) - len(failed)}/{len(TESTS)} passed (OpenSSL: {ssl.OPENSSL_VERSION})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
