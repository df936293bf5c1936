"""A network of real `cvqkd node` processes for the end-to-end tests (on 127.0.0.1, or each site on
its own address, e.g. in its own network namespace: NetnsLab), and the two HTTPS clients they use:
an SAE (ETSI GS QKD 014) and the operator (admin API). Standard library only (http.client + ssl),
mutual TLS with the certificates `cvqkd network generate` issued."""

import atexit
import base64
import http.client
import json
import os
import random
import re
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
    """One keep-alive HTTPS connection to a node's API at host:port as the holder of cert/key. With
    check_hostname the server certificate must name `host` (subjectAltName IP), as a browser or curl
    checks it; without, only its chain is checked (the CN names the KME, not the address)."""

    def __init__(self, port, pki, cert, key, host="127.0.0.1", check_hostname=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = check_hostname
        ctx.load_verify_locations(os.path.join(pki, "ca", "ca.crt"))
        ctx.load_cert_chain(cert, key)
        self.host, self.port, self.ctx = host, port, ctx
        self.conn = None

    def call(self, method, target, body=None, timeout=30):
        """(status, parsed JSON or None); reconnects once if the kept-alive connection closed."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
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
    """`cvqkd network generate` into `workdir`, then one `cvqkd node` process per site. `hosts` (site ->
    IPv4 address) puts sites on their own addresses (`--host`; the clients then check that the node
    certificates name them); `launcher(site)` gives a command prefix a site's node runs under (e.g.
    ["ip", "netns", "exec", NS], which execs, so the node keeps the PID the harness signals)."""

    def __init__(self, cvqkd, topology, workdir, hosts=None, launcher=None):
        self.cvqkd, self.dir = os.path.abspath(cvqkd), workdir  # nodes run in their own directories
        self.hosts, self.launcher = dict(hosts or {}), launcher
        host_args = [a for site, addr in sorted(self.hosts.items()) for a in ("--host", f"{site}={addr}")]
        self.base_port = None
        out = None
        for _ in range(5):
            self.base_port = free_base_port(64)
            r = subprocess.run([self.cvqkd, "network", "generate", "--topology", topology, "--dir", workdir,
                                "--base-port", str(self.base_port), "--json"] + host_args,
                               capture_output=True, text=True)
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

    def api_host(self, node):
        return self.nodes[node]["api_listen"].rsplit(":", 1)[0]

    def listen(self, node):
        """(host, port) of the node's inter-node channel."""
        host, port = self.nodes[node]["listen"].rsplit(":", 1)
        return host, int(port)

    def start(self, node):
        cfg = self.nodes[node]["config"]
        prefix = list(self.launcher(node)) if self.launcher else []
        with open(os.path.join(os.path.dirname(cfg), "log"), "ab") as log:
            self.procs[node] = subprocess.Popen(prefix + [self.cvqkd, "node", "--config", cfg],
                                                cwd=os.path.dirname(cfg), stdout=log, stderr=subprocess.STDOUT)

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
        return Client(self.api_port(node), self.pki, os.path.join(d, "sae.crt"), os.path.join(d, "sae.key"),
                      host=self.api_host(node), check_hostname=node in self.hosts)

    def operator(self, node):
        d = os.path.join(self.pki, "operators", "operator")
        return Client(self.api_port(node), self.pki, os.path.join(d, "operator.crt"), os.path.join(d, "operator.key"),
                      host=self.api_host(node), check_hostname=node in self.hosts)

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
                if n in self.procs and self.procs[n].poll() is not None:
                    raise AssertionError(f"node {n} exited with {self.procs[n].returncode} while waiting for key; "
                                         f"its log:\n{self.log_tail(n)}")
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


# ---------------------------------------------------------------------------------------------
# Sites on separate hosts: one Linux network namespace per site


class NetnsUnavailable(Exception):
    """Network namespaces cannot be made here (the message says why); tests skip on it."""


def _have_net_admin():
    """Root, or CAP_NET_ADMIN (12) and CAP_SYS_ADMIN (21, `ip netns add` mounts /run/netns) in effect."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as f:
            eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
        return bool(eff & (1 << 12)) and bool(eff & (1 << 21))
    except (OSError, StopIteration, ValueError):
        return False


def _run(args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


class NetnsLab:
    """One network namespace per site, each with lo up and one veth (eth0, 10.213.N.(2+i)/24) into a
    bridge that lives in a namespace of its own (so the host's bridge netfilter rules, e.g. a
    container runtime's FORWARD DROP, never see the traffic), plus a veth from this (the root)
    namespace into the same bridge (10.213.N.1), so the test reaches every site's API over the
    bridge. Names carry the PID (cvqkd-<pid>-<site>, cvqkd-<pid>-sw, cq<pid>r): parallel runs do not
    clash, and namespaces left by a run that was killed (its PID gone) are removed by the next one.
    N is chosen so that 10.213.N.0/24 is on no interface or route of this namespace.

        lab = NetnsLab(["A", "B", "C"]); lab.create()  # raises NetnsUnavailable: skip
        ... lab.prefix("A") ... lab.address["A"] ...
        lab.destroy()                                  # also registered with atexit
    """

    def __init__(self, sites):
        self.pid = os.getpid()
        self.sites = list(sites)
        self.ns = {s: f"cvqkd-{self.pid}-{s}" for s in self.sites}
        self.switch = f"cvqkd-{self.pid}-sw"
        self.uplink = f"cq{self.pid}r"
        self.address, self.gateway = {}, None
        self.created = []  # namespaces made so far (destroy() removes them)

    @staticmethod
    def check_available():
        """Raises NetnsUnavailable with the reason when namespaces cannot be made here."""
        if not sys.platform.startswith("linux"):
            raise NetnsUnavailable(f"network namespaces are Linux only (this is {sys.platform})")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
        if not _have_net_admin():
            raise NetnsUnavailable("not root and no CAP_NET_ADMIN + CAP_SYS_ADMIN: `ip netns add` would be refused")

    @staticmethod
    def sweep_stale():
        """Removes namespaces cvqkd-<pid>-* (and their uplink) of runs whose process is gone."""
        r = _run(["ip", "netns", "list"], check=False)
        for line in r.stdout.splitlines():
            m = re.match(r"(cvqkd-(\d+)-\S+)", line.strip())
            if not m or os.path.exists(f"/proc/{m.group(2)}"):
                continue
            for pid in _run(["ip", "netns", "pids", m.group(1)], check=False).stdout.split():
                print(f"netns: killing leftover process {pid} in stale namespace {m.group(1)}", flush=True)
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            _run(["ip", "netns", "del", m.group(1)], check=False)
            _run(["ip", "link", "del", f"cq{m.group(2)}r"], check=False)
            print(f"netns: removed stale namespace {m.group(1)}", flush=True)

    def _free_subnet(self):
        used = _run(["ip", "-4", "-o", "addr", "show"]).stdout + _run(["ip", "-4", "route", "show", "table", "all"],
                                                                      check=False).stdout
        for k in range(256):
            n = (self.pid + k) % 256
            if f"10.213.{n}." not in used:
                return n
        raise RuntimeError("every 10.213.N.0/24 is in use on this host")

    def create(self):
        """Makes the namespaces, the bridge and the veths. Raises NetnsUnavailable when the very first
        namespace cannot be made (no permission, no netns support), RuntimeError on a later failure."""
        self.check_available()
        self.sweep_stale()
        atexit.register(self.destroy)
        r = _run(["ip", "netns", "add", self.switch], check=False)
        if r.returncode != 0:
            raise NetnsUnavailable(f"`ip netns add` failed: {r.stderr.strip()}")
        self.created.append(self.switch)
        n = self._free_subnet()
        self.gateway = f"10.213.{n}.1"
        sw = ["ip", "-n", self.switch]
        _run(sw + ["link", "add", "br0", "type", "bridge"])
        _run(sw + ["link", "set", "br0", "up"])
        for i, site in enumerate(self.sites):
            ns = self.ns[site]
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
            self.address[site] = f"10.213.{n}.{2 + i}"
            _run(sw + ["link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns])
            _run(sw + ["link", "set", f"p{i}", "master", "br0", "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{self.address[site]}/24", "dev", "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "link", "add", self.uplink, "type", "veth", "peer", "name", "up0", "netns", self.switch])
        _run(sw + ["link", "set", "up0", "master", "br0", "up"])
        _run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.uplink])
        _run(["ip", "link", "set", self.uplink, "up"])

    def prefix(self, site):
        """The command prefix that runs a program in the site's namespace."""
        return ["ip", "netns", "exec", self.ns[site]]

    def run_in(self, site, args):
        return _run(self.prefix(site) + list(args))

    def tcp_sockets(self, site):
        """The site namespace's IPv4 TCP sockets: [(state, (local ip, port), (remote ip, port))] from
        /proc/net/tcp as a process in that namespace sees it; state 'LISTEN', 'ESTABLISHED', ..."""
        states = {"01": "ESTABLISHED", "0A": "LISTEN"}
        def addr(hexaddr):
            ip, port = hexaddr.split(":")
            return socket.inet_ntoa(bytes.fromhex(ip)[::-1]), int(port, 16)
        out = []
        for line in self.run_in(site, ["cat", "/proc/net/tcp"]).stdout.splitlines()[1:]:
            f = line.split()
            out.append((states.get(f[3], f[3]), addr(f[1]), addr(f[2])))
        return out

    def eth0_bytes(self, site):
        """(rx, tx) bytes of the site's eth0."""
        return tuple(int(self.run_in(site, ["cat", f"/sys/class/net/eth0/statistics/{d}_bytes"]).stdout)
                     for d in ("rx", "tx"))

    def destroy(self):
        """Kills what still runs in the namespaces (the nodes this test started), removes them and the
        uplink. Idempotent; never raises."""
        for ns in reversed(self.created):
            for pid in _run(["ip", "netns", "pids", ns], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        for ns in reversed(self.created):
            r = _run(["ip", "netns", "del", ns], check=False)
            if r.returncode != 0:
                print(f"netns: cannot remove {ns}: {r.stderr.strip()}", flush=True)
        self.created = []
        _run(["ip", "link", "del", self.uplink], check=False)
