"""Two builds of `llmwatch scrape FILE --format FORMAT` timed alternately, whole process,
so that drift in the machine's speed falls on both: the median and fastest wall time of
each, and the throughput the median makes.

    python3 benches/scrape_alternating.py OLD_BINARY NEW_BINARY FORMAT RUNS FILE
"""
import os
import statistics
import subprocess
import sys
import time

old, new, fmt, runs, body = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
size = os.path.getsize(body)
times = {old: [], new: []}
with open(os.devnull, "w") as sink:
    for i in range(runs):
        for binary in (old, new) if i % 2 == 0 else (new, old):
            start = time.perf_counter()
            subprocess.run([binary, "scrape", body, "--format", fmt], stdout=sink, stderr=sink, check=True)
            times[binary].append(time.perf_counter() - start)
for binary, taken in times.items():
    median = statistics.median(taken)
    print(f"{binary} {fmt}: median {median * 1000:.1f} ms, {size / median / 1e6:.0f} MB/s, fastest {min(taken) * 1000:.1f} ms")
