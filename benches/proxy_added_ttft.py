#!/usr/bin/env python3
"""What a middle (llmwatch proxy, nginx) adds to each request's time to first token, per
request, against the simulator's ground truth.

Distributions of TTFT through two paths cannot resolve a fraction of a millisecond when the
engine's own TTFT varies by a whole step. So every request is made identifiable: a trace gives
request i a prompt of (32 + i) tokens, the simulator's ground truth (GET /sim/requests) records
each request's prompt tokens, arrival and first token, and the bench's per-request CSV records
its prompt tokens (from usage) and client TTFT. Joined on prompt tokens, each request gives
  path = client TTFT - engine TTFT (first token - arrival at the engine),
the time the path (client, network, middle) added. Each row runs on a fresh simulator.
"Added" compares a middle's quantiles of that time with the direct path's.

Usage: benches/proxy_added_ttft.py [--streams 10 100 1000] [--profile bench] [--step-ms 40]
       [--output-tokens 100] [--nginx] [--pin]   (nginx 1.22 from Debian, proxy_buffering off)
Streams are concurrent answers: the rate is streams / (output tokens x step).
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_compare import Sim, quantile, run  # noqa: E402

NGINX_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nginx_reference.conf")


def start_middle(a, kind, sim_port, port, work):
    if kind == "proxy":
        cmd = [a.llmwatch, "proxy", "--upstream", f"http://127.0.0.1:{sim_port}",
               "--listen", f"127.0.0.1:{port}"]
    else:
        conf = os.path.join(work, "nginx.conf")
        with open(NGINX_CONF) as template, open(conf, "w") as f:
            text = template.read().replace("UPSTREAM_PORT", str(sim_port))
            f.write(text.replace("LISTEN_PORT", str(port)))
        cmd = ["nginx", "-c", conf, "-p", work, "-g",
               f"daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err;"]
    if a.pin:
        cmd = ["taskset", "-c", "1"] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.7)
    return proc


def one_path(a, kind, streams, work):
    sim_port, port = 18740, 18741
    sim = Sim(a.llmwatch, sim_port, a.profile, pin=["taskset", "-c", "0"] if a.pin else [])
    middle = None if kind == "direct" else start_middle(a, kind, sim_port, port, work)
    try:
        rate = streams / (a.output_tokens * a.step_ms / 1e3)
        count = int(max(100, min(a.max_requests, a.seconds * rate)))
        trace = os.path.join(work, "trace.jsonl")
        with open(trace, "w") as f:
            for i in range(count):
                f.write(json.dumps({"timestamp": i / rate, "input_tokens": 32 + i,
                                    "output_tokens": a.output_tokens}) + "\n")
        url = f"http://127.0.0.1:{sim_port if middle is None else port}"
        out = os.path.join(work, "requests.csv")
        pin = ["taskset", "-c", "0"] if a.pin else []
        run(pin + [a.llmwatch, "bench", url, "--trace", trace, "--csv", out,
             "--json", os.path.join(work, "r.json"), "--timeout", "120s", "--no-calibrate"])
        truth = {r["prompt_tokens"]: r for r in sim.records() if r.get("first_token")}
        added = []
        for row in csv.DictReader(open(out)):
            record = truth.get(int(row["input_tokens"] or -1))
            if record is None or not row["ttft_s"]:
                continue
            engine = record["first_token"] - record["arrival"]
            added.append(float(row["ttft_s"]) - engine)
        return count, added
    finally:
        if middle is not None:
            middle.terminate()
            middle.wait()
        sim.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llmwatch", default="target/release/llmwatch")
    p.add_argument("--streams", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--profile", default="bench")
    p.add_argument("--step-ms", type=float, default=40.0)
    p.add_argument("--output-tokens", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0, help="trace length")
    p.add_argument("--max-requests", type=int, default=2500)
    p.add_argument("--nginx", action="store_true")
    p.add_argument("--pin", action="store_true",
                   help="the middle alone on CPU 1; the bench and the simulator on CPU 0")
    a = p.parse_args()
    paths = ["direct", "proxy"] + (["nginx"] if a.nginx else [])
    print("| streams | path | requests paired | path time p50 | p99 | p99.9 | added p50 | added p99 |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for streams in a.streams:
            base = None
            for kind in paths:
                count, added = one_path(a, kind, streams, work)
                q = [quantile(added, x) * 1e3 for x in (0.5, 0.99, 0.999)]
                if kind == "direct":
                    base = q
                    extra = "– | –"
                else:
                    extra = f"{q[0] - base[0]:+.3f} ms | {q[1] - base[1]:+.3f} ms"
                print(f"| {streams} | {kind} | {len(added)} of {count} | {q[0]:.3f} ms | "
                      f"{q[1]:.3f} ms | {q[2]:.3f} ms | {extra} |", flush=True)


if __name__ == "__main__":
    main()
