"""A network of real `cvqkd node` processes on 127.0.0.1 for the end-to-end tests, and the two
HTTPS clients they use: an SAE (ETSI GS QKD 014) and the operator (admin API). Standard library
only (http.client + ssl), mutual TLS with the certificates `cvqkd network generate` issued."""

import base64
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time


failures = []  # what check() found wrong in this test process


def check(cond, what):
    """Records and prints a failed expectation (the test goes on, and exits 1 at the end)."""
    if not cond:
        failures.append(what)
        print("FAILED:", what, flush=True)
    return cond


def free_base_port(count, lo=20000, hi=45000, tries=200):
    """A base port P such that P .. P + count - 1 are free on 127.0.0.1 right now."""
    rnd = random.Random()
    for _ in range(tries):
        p = rnd.randrange(lo, hi - count)
        ok = True
        for q in range(p, p + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
                    break
        if ok:
            return p
    raise RuntimeError("no free port range on 127.0.0.1")


class Client:
    """One keep-alive HTTPS connection to a node's API as the holder of `cert_dir`."""

    def __init__(self, port, pki, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # the server certificate names the KME, not 127.0.0.1
        ctx.load_verify_locations(os.path.join(pki, "ca", "ca.crt"))
        ctx.load_cert_chain(cert, key)
        self.port, self.ctx = port, ctx
        self.conn = None

    def call(self, method, target, body=None, timeout=30):
        """(status, parsed JSON or None); reconnects once if the kept-alive connection closed."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self.conn.request(method, target, None if body is None else json.dumps(body), headers)
                r = self.conn.getresponse()
                data = r.read()
                try:
                    parsed = json.loads(data) if data else None
                except ValueError:
                    parsed = data.decode(errors="replace")
                return r.status, parsed
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Network:
    def __init__(self, cvqkd, topology, workdir):
        self.cvqkd, self.dir = cvqkd, workdir
        self.base_port = None
        out = None
        for _ in range(5):
            self.base_port = free_base_port(64)
            r = subprocess.run([cvqkd, "network", "generate", "--topology", topology, "--dir", workdir,
                                "--base-port", str(self.base_port), "--json"], capture_output=True, text=True)
            if r.returncode == 0:
                out = json.loads(r.stdout)
                break
            sys.stderr.write(r.stderr)
        if out is None:
            raise RuntimeError("cvqkd network generate failed")
        self.nodes = {n["id"]: n for n in out["nodes"]}
        self.pki = os.path.join(workdir, "pki")
        self.procs = {}

    def api_port(self, node):
        return int(self.nodes[node]["api_listen"].rsplit(":", 1)[1])

    def start(self, node):
        cfg = self.nodes[node]["config"]
        log = open(os.path.join(os.path.dirname(cfg), "log"), "ab")
        self.procs[node] = subprocess.Popen([self.cvqkd, "node", "--config", cfg], cwd=os.path.dirname(cfg),
                                            stdout=log, stderr=subprocess.STDOUT)

    def start_all(self):
        for n in self.nodes:
            self.start(n)

    def kill(self, node):
        p = self.procs.pop(node)
        p.send_signal(signal.SIGKILL)
        p.wait()

    def stop(self, node, timeout=30):
        """SIGTERM; the exit status (None if it had to be killed)."""
        return self.stop_all([node], timeout)[node]

    def stop_all(self, nodes=None, timeout=30):
        """SIGTERM to the nodes (all by default) at once, as a service manager stops a site; each one's exit
        status, None for a node that had to be killed: its threads' stacks are printed first (gdb), so that
        a slow stop can be diagnosed from the test log."""
        names = list(self.procs) if nodes is None else list(nodes)
        unknown = [n for n in names if n not in self.procs]
        if unknown:
            raise ValueError(f"not running: {unknown}")
        procs = {n: self.procs.pop(n) for n in names}
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes = {}
        for n, p in procs.items():
            try:
                codes[n] = p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[n] = None
                print(f"node {n} still runs {timeout} s after SIGTERM; its threads:", flush=True)
                try:
                    if shutil.which("gdb"):
                        r = subprocess.run(["gdb", "-p", str(p.pid), "-batch", "-ex", "thread apply all bt 20"],
                                           capture_output=True, text=True, timeout=120)
                        print(r.stdout[-30000:], r.stderr[-2000:], flush=True)
                except (subprocess.TimeoutExpired, OSError) as e:
                    print(f"(no stacks: {e})", flush=True)
                finally:
                    p.kill()
                    p.wait()
        return codes

    def log_tail(self, node, lines=25):
        path = os.path.join(os.path.dirname(self.nodes[node]["config"]), "log")
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def sae(self, node, sae_id):
        d = os.path.join(self.pki, "saes", sae_id)
        return Client(self.api_port(node), self.pki, os.path.join(d, "sae.crt"), os.path.join(d, "sae.key"))

    def operator(self, node):
        d = os.path.join(self.pki, "operators", "operator")
        return Client(self.api_port(node), self.pki, os.path.join(d, "operator.crt"), os.path.join(d, "operator.key"))

    def status(self, node):
        c = self.operator(node)
        try:
            code, body = c.call("GET", "/admin/status", timeout=10)
            return body if code == 200 else None
        except OSError:
            return None
        finally:
            c.close()

    def wait_pools(self, min_bits, timeout, nodes=None, floor=None):
        """Waits until every link end of `nodes` (default all) holds >= min_bits in its pool, and
        returns the smallest pool. With `floor`: after `timeout`, settles for every pool >= floor
        (slow builds, e.g. under sanitizers)."""
        deadline = time.monotonic() + timeout
        nodes = list(nodes or self.nodes)
        while True:
            short, smallest = [], None
            for n in nodes:
                s = self.status(n)
                if s is None:
                    short.append(f"{n}: no status")
                    continue
                for link in s["links"]:
                    smallest = link["pool_bits"] if smallest is None else min(smallest, link["pool_bits"])
                    if link["pool_bits"] < min_bits:
                        short.append(f"{n}/{link['link_id']}: {link['pool_bits']} bits")
            if not short:
                return smallest
            if time.monotonic() >= deadline:
                if floor is not None and smallest is not None and not any("no status" in x for x in short) \
                        and smallest >= floor:
                    return smallest
                raise AssertionError(f"pools below {min_bits} bits after {timeout} s: {short}")
            time.sleep(1.0)


def enc_keys(client, slave, number=1, size=256, body=None):
    if body is None:
        return client.call("GET", f"/api/v1/keys/{slave}/enc_keys?number={number}&size={size}")
    return client.call("POST", f"/api/v1/keys/{slave}/enc_keys", body)


def dec_keys(client, master, key_ids):
    return client.call("POST", f"/api/v1/keys/{master}/dec_keys", {"key_IDs": [{"key_ID": k} for k in key_ids]})


def keys_of(body):
    return {k["key_ID"]: base64.b64decode(k["key"]) for k in body["keys"]}


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]
