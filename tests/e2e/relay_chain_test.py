"""Issue #7 end to end: six `cvqkd node` processes in a chain (config/topologies/test-chain6.toml,
TLS between the nodes, mutual TLS on the API). A key requested by SAE-A at node A for SAE-F at
node F crosses five hops and arrives identical; the 5-hop latency of enc_keys (relay plus the
durable commits at both ends) is measured over sequential keep-alive requests with the pools
pre-filled and reported (not asserted); then the middle node C is SIGKILLed while requests are in
flight: no request may return a key that F does not hold identically, requests fail with a clear
503 naming the problem while C is down, and key delivery resumes after C restarts.

    relay_chain_test.py <cvqkd binary> [--requests N] [--keep DIR]
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cvqkd_net as cn  # noqa: E402

from cvqkd_net import check, failures  # noqa: E402


def verify_at_f(net, delivered):
    """Every key A handed out must be at F, identical (dec_keys in batches)."""
    f = net.sae("F", "SAE-F")
    ids = list(delivered)
    for i in range(0, len(ids), 64):
        code, body = cn.dec_keys(f, "SAE-A", ids[i:i + 64])
        if not check(code == 200, f"dec_keys at F for {len(ids[i:i + 64])} keys: {code} {body}"):
            continue
        got = cn.keys_of(body)
        for k in ids[i:i + 64]:
            check(got.get(k) == delivered[k], f"key {k}: F holds other bytes than A delivered")
    f.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cvqkd")
    ap.add_argument("--requests", type=int, default=150)
    ap.add_argument("--keep", help="keep the network directory here")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="cvqkd-chain-")
    topo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config", "topologies",
                        "test-chain6.toml")
    net = cn.Network(a.cvqkd, topo, work)
    try:
        net.start_all()
        t0 = time.monotonic()
        # Pools near their limit (400,000 bits, then the links pause), so that the latency run below
        # never waits for key: each 256-bit key takes 512 bits (key + tag) from one direction of every
        # hop, and a direction holds about half of a link end's pool.
        smallest = net.wait_pools(300_000, timeout=600, floor=60_000)
        print(f"pools of all 10 link ends >= {smallest} bits after {time.monotonic() - t0:.1f} s", flush=True)
        # A slow (sanitizer) build may not reach 300,000 bits: fewer requests then, so that the
        # latency run never waits for key (a direction holds about half the pool).
        requests = max(20, min(a.requests, int(smallest / 2 / 512 * 0.6) - 10))

        a_cli = net.sae("A", "SAE-A")
        op = net.operator("A")
        code, routes = op.call("GET", "/admin/routes")
        path = next((r.get("path") for r in routes["routes"] if r["destination"] == "F"), None) if code == 200 else None
        check(path == ["A", "B", "C", "D", "E", "F"], f"route A -> F: {path} ({code})")
        op.close()

        # One key each way of asking (GET and POST with several keys), checked at F.
        delivered = {}
        code, body = cn.enc_keys(a_cli, "SAE-F", 1, 256)
        if check(code == 200, f"enc_keys A -> F: {code} {body}"):
            delivered.update(cn.keys_of(body))
        code, body = cn.enc_keys(a_cli, "SAE-F", body={"number": 3, "size": 512})
        if check(code == 200 and len(body["keys"]) == 3, f"POST enc_keys A -> F (3 x 512): {code} {body}"):
            delivered.update(cn.keys_of(body))
        verify_at_f(net, delivered)
        if failures:
            return 1
        print("a key requested at A for SAE-F arrived identical at F (1 x 256 bit GET, 3 x 512 bit POST)", flush=True)

        # Latency over five hops, pools pre-filled.
        # A relay may time out on a loaded machine (CI runs other tests beside this one): such
        # refusals are counted and reported; more than a tenth of the requests fails the test.
        lat, delivered, refused = [], {}, []
        for _ in range(requests):
            t = time.perf_counter()
            code, body = cn.enc_keys(a_cli, "SAE-F", 1, 256)
            dt = (time.perf_counter() - t) * 1e3
            if code == 200:
                lat.append(dt)
                delivered.update(cn.keys_of(body))
            else:
                refused.append((code, body))
        if refused:
            print(f"{len(refused)} of {requests} latency-run requests refused, first: {refused[0]}", flush=True)
        check(len(refused) * 10 <= requests and all(c == 503 for c, _ in refused),
              f"{len(refused)} of {requests} requests refused in the latency run: {refused[:2]}")
        verify_at_f(net, delivered)
        report = {"relay_5hop_enc_keys_ms": {"requests": len(lat), "refused": len(refused), "p50": round(cn.percentile(lat, 50), 2),
                                             "p90": round(cn.percentile(lat, 90), 2),
                                             "p99": round(cn.percentile(lat, 99), 2),
                                             "max": round(max(lat), 2) if lat else None}}
        print(json.dumps(report), flush=True)

        # Kill the middle node while requests are in flight.
        delivered, outcomes, stop = {}, [], threading.Event()

        def load():
            c = net.sae("A", "SAE-A")
            while not stop.is_set():
                t = time.monotonic()
                try:
                    code, body = cn.enc_keys(c, "SAE-F", 1, 256)
                except OSError as e:
                    code, body = -1, str(e)
                outcomes.append((t, code, body))
                if code == 200:
                    delivered.update(cn.keys_of(body))
            c.close()

        th = threading.Thread(target=load)
        th.start()
        time.sleep(2.0)
        t_kill = time.monotonic()
        net.kill("C")
        print("SIGKILL node C (transit of A -> F)", flush=True)
        time.sleep(6.0)
        net.start("C")
        t_restart = time.monotonic()
        deadline = t_restart + 240
        resumed = None
        while time.monotonic() < deadline and resumed is None:
            time.sleep(0.5)
            resumed = next((t for t, code, _ in list(outcomes) if t > t_restart and code == 200), None)
        stop.set()
        th.join()
        fails = [(t, code, body) for t, code, body in outcomes if code != 200]
        def gist(body):  # the message without the key's name, so equal refusals collapse
            text = body.get("message", "") if isinstance(body, dict) else str(body)
            return re.sub(r"key '[^']*'", "key '...'", text)[:200]
        msgs = sorted({(code, gist(body)) for _, code, body in fails})
        print(f"kill mid-relay: {len(outcomes)} requests, {len(fails)} refused while C was down; messages: {msgs}",
              flush=True)
        check(all(code == 503 for _, code, _ in fails), f"refusals other than 503: {msgs}")
        check(all(isinstance(b, dict) and "message" in b and b["message"] for _, _, b in fails),
              "a 503 without a message")
        check(resumed is not None, "key delivery did not resume within 240 s of restarting C")
        if resumed is not None:
            print(f"key delivery resumed {resumed - t_restart:.1f} s after C restarted "
                  f"({resumed - t_kill:.1f} s after the kill)", flush=True)
        verify_at_f(net, delivered)
        print(f"{len(delivered)} keys delivered around the kill, all identical at F", flush=True)
        a_cli.close()
        return 1 if failures else 0
    finally:
        codes = net.stop_all()
        bad = {n: c for n, c in codes.items() if c != 0}
        if bad:
            for n in bad:
                print(f"--- node {n} exited with {bad[n]}; log tail:\n{net.log_tail(n)}", flush=True)
            check(False, f"nodes did not stop within 30 s of SIGTERM or exited non-zero: {bad}")
        if failures:
            for n in net.nodes:
                print(f"--- {n} log tail:\n{net.log_tail(n, 12)}", flush=True)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    rc = main()
    sys.exit(1 if failures else rc)
