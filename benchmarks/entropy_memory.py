"""Peak memory and time of token entropy from full-vocabulary logits: chunked vs a naive softmax.

    python benchmarks/entropy_memory.py                 # the issue's case: [8, 512, 152064] float32
    python benchmarks/entropy_memory.py --shape 2 128 32000 --json out.json

Each variant runs in a fresh subprocess; peak memory is the process's peak resident set size
(``ru_maxrss``) above its size just after the logits were made, reported as a multiple of the
logits tensor, together with the total peak (logits included) over the logits. The goal for the
chunked path is a total peak <= 1.5x the logits.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import machine

VARIANTS = {
    "chunked (no grad)": "token_entropy(logits)",
    "naive softmax (no grad)": "-(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)",
}


def measure(shape: list[int], expression: str) -> dict:
    import torch

    from entropy_rl.metrics import token_entropy  # noqa: F401  (used by the expression)

    torch.manual_seed(0)
    with torch.no_grad():
        logits = torch.randn(*shape, dtype=torch.float32)
        logits_bytes = logits.numel() * logits.element_size()
        base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        result = eval(expression)
        seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extra = (peak_kb - base_kb) * 1024
    return {
        "seconds": seconds,
        "logits_gb": logits_bytes / 1e9,
        "extra_over_logits": extra / logits_bytes,
        "total_peak_over_logits": (extra + logits_bytes) / logits_bytes,
        "checksum": float(result.double().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", type=int, nargs=3, default=[8, 512, 152064], metavar=("B", "T", "V")
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.shape, VARIANTS[args.child])))
        return

    rows = {}
    for name in VARIANTS:
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "--shape", *map(str, args.shape)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"token entropy of float32 logits {args.shape} ({rows[name]['logits_gb']:.2f} GB)")
    print(machine.header())
    print(f"{'variant':<26}{'time (s)':>10}{'extra/logits':>14}{'peak/logits':>13}")
    for name, row in rows.items():
        print(
            f"{name:<26}{row['seconds']:>10.2f}{row['extra_over_logits']:>14.2f}{row['total_peak_over_logits']:>13.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"shape": args.shape, "machine": machine.describe(), "results": rows}, f, indent=2
            )


if __name__ == "__main__":
    main()
