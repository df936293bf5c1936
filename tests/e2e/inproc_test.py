"""The 30-site smoke version of the scale benchmark: a synthetic backbone (`cvqkd network synth`)
run by `cvqkd network up --in-process` (every node inside one process), keys end to end between a
handful of random site pairs over the ETSI API (enc_keys as the master SAE at one site, dec_keys as
the slave SAE at the other), master's key == slave's key, at least one pair three or more hops
apart; then SIGINT stops the whole network cleanly. Usage: inproc_test.py CVQKD [SEED]."""

import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cvqkd_net as cn  # noqa: E402

NODES, LINKS, PAIRS = 30, 40, 6


def hops(topo, src):
    adj = collections.defaultdict(list)
    for link in topo["links"]:
        adj[link["a"]].append(link["b"])
        adj[link["b"]].append(link["a"])
    d, frontier = {src: 0}, [src]
    while frontier:
        nxt = []
        for n in frontier:
            for m in adj[n]:
                if m not in d:
                    d[m] = d[n] + 1
                    nxt.append(m)
        frontier = nxt
    return d


def main():
    cvqkd = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ.get("CVQKD_TEST_SEED", time.time_ns() % 100000))
    print(f"seed {seed} (rerun: inproc_test.py CVQKD {seed})", flush=True)
    rnd = random.Random(seed)
    t_begin = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cvqkd-inproc-") as work:
        topo_file = os.path.join(work, "topology.toml")
        subprocess.run([cvqkd, "network", "synth", "--nodes", str(NODES), "--links", str(LINKS), "--seed", str(seed),
                        "--out", topo_file], check=True)
        with open(topo_file, "rb") as f:
            topo = tomllib.load(f)
        cn.check(len(topo["nodes"]) == NODES and len(topo["links"]) == LINKS, "synth wrote the asked size")
        # Same seed, same file.
        again_file = os.path.join(work, "again.toml")
        subprocess.run([cvqkd, "network", "synth", "--nodes", str(NODES), "--links", str(LINKS), "--seed", str(seed),
                        "--out", again_file], check=True)
        with open(topo_file) as f, open(again_file) as g:
            cn.check(f.read() == g.read(), "synth is deterministic from the seed")
        d0 = hops(topo, topo["nodes"][0]["id"])
        cn.check(len(d0) == NODES, f"the topology is connected ({len(d0)} of {NODES} reachable)")

        netdir = os.path.join(work, "net")
        net = cn.Network(cvqkd, topo_file, netdir)  # generate: PKI, node files, a free port range
        up_log = open(os.path.join(work, "up.log"), "w")
        t_up = time.monotonic()
        up = subprocess.Popen([cvqkd, "network", "up", "--in-process", "--topology", topo_file, "--dir", netdir,
                               "--base-port", str(net.base_port), "--for", "900", "--poll-interval", "5"],
                              stdout=up_log, stderr=subprocess.STDOUT)
        try:
            # Pairs: random, plus the farthest pair from a random site (>= 3 hops on this mesh).
            ids = [n["id"] for n in topo["nodes"]]
            pairs = []
            while len(pairs) < PAIRS - 1:
                a, b = rnd.sample(ids, 2)
                pairs.append((a, b))
            src = rnd.choice(ids)
            dist = hops(topo, src)
            far = max(dist, key=lambda n: (dist[n], n))
            pairs.append((src, far))
            pair_hops = [hops(topo, a)[b] for a, b in pairs]
            print("pairs:", ", ".join(f"{a}>{b} ({h} hops)" for (a, b), h in zip(pairs, pair_hops)), flush=True)
            cn.check(max(pair_hops) >= 3, f"a pair at least 3 hops apart (farthest {max(pair_hops)})")

            # Key on every link end (a round of ~6e5-8e5 symbols each; 40 links share 2 cores).
            smallest = net.wait_pools(1024, timeout=600)
            t_keys = time.monotonic()
            print(f"every link has key after {t_keys - t_up:.0f} s (smallest pool {smallest} bits)", flush=True)

            lat = []
            for (a, b), h in zip(pairs, pair_hops):
                ma, sb = f"SAE-{a}", f"SAE-{b}"
                master, slave = net.sae(a, ma), net.sae(b, sb)
                try:
                    t1 = time.monotonic()
                    code, body = cn.enc_keys(master, sb, number=1, size=256)
                    lat.append(time.monotonic() - t1)
                    if not cn.check(code == 200, f"{a}>{b}: enc_keys 200 (got {code}: {body})"):
                        continue
                    got = cn.keys_of(body)
                    code, body = cn.dec_keys(slave, ma, list(got))
                    if not cn.check(code == 200, f"{a}>{b}: dec_keys 200 (got {code}: {body})"):
                        continue
                    cn.check(cn.keys_of(body) == got, f"{a}>{b} ({h} hops): master's key == slave's key")
                    print(f"{a}>{b}: {h} hops, the same 256-bit key at both ends, enc_keys {1e3 * lat[-1]:.0f} ms",
                          flush=True)
                finally:
                    master.close()
                    slave.close()
            cn.check(up.poll() is None, "network up still runs")
        finally:
            t_stop = time.monotonic()
            up.send_signal(signal.SIGINT)
            try:
                rc = up.wait(120)
            except subprocess.TimeoutExpired:
                up.kill()
                rc = None
            up_log.close()
            with open(os.path.join(work, "up.log")) as f:
                tail = f.readlines()[-8:]
            print("network up, last lines:\n" + "".join(tail), flush=True)
        cn.check(rc == 0, f"network up stops cleanly on SIGINT (exit {rc})")
        print(f"stop took {time.monotonic() - t_stop:.1f} s; whole test {time.monotonic() - t_begin:.0f} s", flush=True)
    if cn.failures:
        print(f"{len(cn.failures)} failure(s), seed {seed}")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
