#!/usr/bin/env python3
"""Runs the reference Python OpenMetrics parser (prometheus_client) over the bodies of
llmwatch's one-test-per-rule suite and says, for each, whether it agrees with llmwatch's
strict check (every "broken" body refused, every "mended" body accepted).

    LLMWATCH_DUMP_OPENMETRICS_CASES=/tmp/omcases cargo test --lib exposition::openmetrics::tests -- --test-threads=1
    python3 -m venv /tmp/pc && /tmp/pc/bin/pip install prometheus-client==0.23.1
    /tmp/pc/bin/python benches/openmetrics_reference.py /tmp/omcases
"""

import os
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main(directory):
    agree = differ = 0
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            text = f.read()
        try:
            list(text_string_to_metric_families(text))
            accepts, why = True, ""
        except Exception as e:  # the parser raises ValueError and others
            accepts, why = False, str(e)[:80]
        expected = name.endswith("-mended.txt")
        if accepts == expected:
            agree += 1
        else:
            differ += 1
            verdict = "accepts" if accepts else f"refuses ({why})"
            print(f"differs: {name}: the reference parser {verdict}")
    print(f"{agree} agree, {differ} differ")


if __name__ == "__main__":
    main(sys.argv[1])
