"""What choosing Clip-Cov's / KL-Cov's tokens over the whole mini-batch costs, with micro-batching on.

    python benchmarks/selection_cost.py                       # KL-Cov and Clip-Cov, 3 repeats
    python benchmarks/selection_cost.py --losses kl_cov --repeats 5 --json out.json

``train.selection: batch`` runs a no-grad pass over the mini-batch's micro-batches to choose the
tokens once, before the micro-batches' forward and backward passes; ``selection: micro_batch``
(verl's way) chooses inside each micro-batch's loss and needs no extra pass. Both run this suite's
trainer, with the same model (a fresh model of the embedded architecture), prompts, seeds and
``micro_batch_tokens``, in one process; the two settings take turns ``--repeats`` times so that a
drift of the machine hits both alike. Each run is ``--steps`` RL steps after a warm-up step; the
number reported is the median step time (rollout and update) and its ratio, batch / micro_batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import machine
from steps import make_model


def run(model: Path, out: Path, loss: str, selection: str, args) -> float:
    """Median seconds of one RL step (rollout + update), the warm-up step left out."""
    from entropy_rl.tasks import ArithmeticTask
    from entropy_rl.train import RLSettings, train

    config = {"kl_cov": {"k": 0.05}, "clip_cov": {"r": 0.05, "omega_low": 1.0}}[loss]
    settings = RLSettings(
        model=str(model), steps=args.steps + 1, prompts_per_step=args.prompts, group_size=8,
        mini_batches=4, lr=1e-5, max_new_tokens=48, checkpoint_every=10**6, lemma_check_every=0,
        eval_every=0, threads=args.threads, seed=0, loss=loss, loss_config=config,
        micro_batch_tokens=args.micro_batch_tokens, selection=selection,
    )  # fmt: skip
    rows = train(settings, out, ArithmeticTask())
    return statistics.median(r["time_rollout_s"] + r["time_update_s"] for r in rows[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--losses", nargs="+", default=["kl_cov", "clip_cov"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--micro-batch-tokens", type=int, default=512,
                        help="padded tokens per micro-batch (a mini-batch of 32 rows × ~45: ~3 parts)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(machine.header())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(Path(tmp) / "model", seed=0)
        for loss in args.losses:
            times: dict[str, list[float]] = {"batch": [], "micro_batch": []}
            for repeat in range(args.repeats):
                for selection in times:
                    out = Path(tmp) / f"{loss}-{selection}-{repeat}"
                    times[selection].append(run(model, out, loss, selection, args))
            batch, per_part = (statistics.median(times[s]) for s in ("batch", "micro_batch"))
            results[loss] = {"batch_s": batch, "micro_batch_s": per_part, "ratio": batch / per_part,
                             "per_repeat": times}  # fmt: skip
    print("| loss | step, selection: batch (s) | step, selection: micro_batch (s) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for loss, r in results.items():
        print(f"| {loss} | {r['batch_s']:.3f} | {r['micro_batch_s']:.3f} | {r['ratio']:.3f} |")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine.describe(), "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
