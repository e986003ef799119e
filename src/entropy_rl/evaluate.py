"""Evaluation: k samples per problem from any ``Generator``, graded by the verifier.

For each problem with ``c`` correct answers among ``n`` samples:

    avg@n  = c / n                                   (mean per-sample accuracy)
    pass@k = 1 - C(n - c, k) / C(n, k)               (Chen et al., 2021; unbiased, k <= n)

averaged over problems. Every sample is kept (problem id, prompt, response, extracted answer,
reference, correct) so any number can be traced back to the text behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any, ClassVar

from entropy_rl.data import render_prompt
from entropy_rl.data.benchmarks import BENCHMARKS, SAMPLES, benchmark_file, load_benchmark
from entropy_rl.io import write_json, write_jsonl
from entropy_rl.rewards import extract_boxed
from entropy_rl.rollout import Generator, ProblemLike, answer_problems
from entropy_rl.settings import Settings, choice, integer, number

__all__ = [
    "EvaluateSettings",
    "evaluate_model",
    "evaluate_problems",
    "pass1_by",
    "pass_at_k",
    "summarize_samples",
]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct of ``n`` samples: ``1 - C(n-c, k) / C(n, k)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize_samples(samples: Sequence[dict[str, Any]], n: int) -> dict[str, float]:
    """``avg@n`` and ``pass@k`` for ``k = 1..n`` from per-sample rows (``n`` rows per problem)."""
    by_problem: dict[Any, list[bool]] = {}
    for row in samples:
        by_problem.setdefault(row["id"], []).append(bool(row["correct"]))
    if not by_problem:
        raise ValueError("no samples to summarise")
    for problem_id, results in by_problem.items():
        if len(results) != n:
            raise ValueError(f"problem {problem_id!r} has {len(results)} samples, expected {n}")
    counts = [sum(results) for results in by_problem.values()]
    summary = {
        "problems": len(counts),
        "samples_per_problem": n,
        f"avg@{n}": sum(counts) / (n * len(counts)),
    }
    for k in range(1, n + 1):
        summary[f"pass@{k}"] = sum(pass_at_k(n, c, k) for c in counts) / len(counts)
    return summary


def evaluate_problems(
    generator: Generator,
    problems: Sequence[ProblemLike],
    template: str,
    k: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    top_p: float = 1.0,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """``k`` samples per problem (greedy when ``temperature = 0``); per-sample rows and a summary.

    A prompt that leaves no room for ``max_new_tokens`` in the model's context (where the
    generator can tell: ``fit_prompts``) is cut from the left before anything is generated (the
    sample keeps the prompt the model saw); the summary counts them (``truncated_prompts``)."""
    answers = answer_problems(
        generator, problems, template, k, temperature, max_new_tokens, seed, top_p
    )
    generation, truncated = answers.generation, answers.truncated
    samples = []
    for i, text in enumerate(generation.texts):
        problem = problems[i // k]
        samples.append(
            {
                "id": problem.id,
                "sample": i % k,
                "prompt": answers.prompts[i // k],
                "response": text,
                "extracted": extract_boxed(text),
                "reference": problem.answer,
                "correct": answers.correct[i],
                "finished": generation.finished[i],
                **getattr(problem, "extra", {}),
            }
        )
    summary = summarize_samples(samples, k)
    return samples, {**summary, "truncated_prompts": truncated} if truncated else summary


def pass1_by(samples: Sequence[dict[str, Any]], key: str, n: int) -> dict[str, float]:
    """Mean pass@1 (= avg@n) of the problems sharing each value of field ``key`` (e.g. OMNI-MATH's
    ``difficulty``), keyed by the value as text, in ascending order of the value."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in samples:
        groups.setdefault(row[key], []).append(row)
    return {
        f"{value:g}" if isinstance(value, float) else str(value): summarize_samples(rows, n)[
            "pass@1"
        ]
        for value, rows in sorted(groups.items())
    }


@dataclass(frozen=True)
class EvaluateSettings(Settings):
    """The ``evaluate:`` section: synthetic held-out / OOD splits and the real benchmarks."""

    section: ClassVar[str] = "evaluate"

    template: str = "toy"
    backend: str = choice(
        "hf",
        ("hf", "lean", "vllm"),
        doc="rollout backend: transformers (CPU/GPU), the lean decoding loop, or vLLM (GPU)",
    )
    device: str = choice(
        "auto", ("auto", "cpu", "cuda"), doc="hf backend: auto uses a GPU if there is one"
    )
    max_new_tokens: int = integer(64, 1, doc="longest response, in tokens")
    heldout_problems: int = integer(256, 0, doc="held-out (in-distribution) problems (0: none)")
    heldout_k: int = integer(4, 1, doc="samples per held-out problem")
    ood_problems: int = integer(
        128, 0, doc="out-of-distribution problems (0: none, e.g. a dataset task)"
    )
    ood_k: int = integer(2, 1, doc="samples per OOD problem")
    temperature: float = number(1.0, 0.0, doc="sampling temperature of the k samples")
    benchmarks: list[str] = field(default_factory=list)
    # "samples": the package's eight rows per set; a file pattern such as data/{name}/test.jsonl;
    # None: the hub
    benchmark_path: str | None = SAMPLES
    benchmark_limit: int = integer(0, 0, doc="rows per benchmark (0: all)")
    benchmark_k: int = integer(2, 1, doc="samples per benchmark problem")
    # a benchmark's own temperature instead of `temperature` (0: greedy, one response), e.g. the
    # recipe's validation: AIME, AIME25 and AMC at 0.6, the others greedy
    benchmark_temperatures: dict[str, float] = field(default_factory=dict)
    seed: int = integer(0, 0, doc="sampling seed")

    def check(self) -> None:
        unknown = [name for name in self.benchmarks if name not in BENCHMARKS]
        if unknown:
            raise ValueError(
                f"evaluate.benchmarks: unknown {unknown}; known benchmarks: {', '.join(BENCHMARKS)}"
            )
        render_prompt(self.template, "")
        for name, temperature in self.benchmark_temperatures.items():
            if name not in self.benchmarks:
                raise ValueError(
                    f"evaluate.benchmark_temperatures names {name!r}, which is not in "
                    f"evaluate.benchmarks ({', '.join(self.benchmarks) or 'none'})"
                )
            if (
                isinstance(temperature, bool)
                or not isinstance(temperature, int | float)
                or temperature < 0
            ):
                raise ValueError(
                    f"evaluate.benchmark_temperatures.{name} must be a number >= 0 (0: greedy), "
                    f"got {temperature!r}"
                )
        if self.benchmark_path is not None and not isinstance(self.benchmark_path, str):
            raise ValueError(
                f"evaluate.benchmark_path must be 'samples', null (the hub) or a file pattern with "
                f"{{name}}, e.g. data/{{name}}/test.jsonl; got {self.benchmark_path!r}"
            )
        benchmark_file(self.benchmark_path, "name")  # only {name} in a pattern


def evaluate_model(
    generator: Generator, task: Any, settings: EvaluateSettings, out: Path
) -> dict[str, Any]:
    """Held-out (sampled and greedy), OOD and benchmark evaluation; per-sample files and a summary."""
    out = Path(out)
    summary: dict[str, Any] = {}
    common = {
        "template": settings.template,
        "max_new_tokens": settings.max_new_tokens,
        "seed": settings.seed,
    }
    runs = {}
    if settings.heldout_problems:
        heldout = task.problems("heldout", settings.heldout_problems, 0)
        runs["heldout"] = (heldout, settings.heldout_k, settings.temperature)
        runs["heldout_greedy"] = (heldout, 1, 0.0)
    if settings.ood_problems:
        runs["ood"] = (
            task.problems("ood", settings.ood_problems, 0),
            settings.ood_k,
            settings.temperature,
        )
    for name in settings.benchmarks:
        path = benchmark_file(settings.benchmark_path, name)
        rows = load_benchmark(name, path, limit=settings.benchmark_limit or None)
        temperature = settings.benchmark_temperatures.get(name, settings.temperature)
        k = settings.benchmark_k if temperature > 0 else 1  # greedy: one response is all there is
        runs[f"benchmark/{name}"] = (rows, k, float(temperature))
    for name, (problems, k, temperature) in runs.items():
        samples, result = evaluate_problems(
            generator, problems, k=k, temperature=temperature, **common
        )
        write_jsonl(out / "samples" / f"{name.replace('/', '_')}.jsonl", samples)
        summary[name] = {**result, "temperature": temperature}
        for key in ("difficulty", "family"):  # OMNI-MATH's difficulty, the carry world's family
            if samples and key in samples[0]:
                summary[name][f"{key}_pass@1"] = pass1_by(samples, key, k)
    if settings.benchmarks:
        names = [f"benchmark/{name}" for name in settings.benchmarks]
        summary["benchmark_average"] = {  # a greedy set's pass@k is its pass@1
            key: sum(summary[n].get(key, summary[n]["pass@1"]) for n in names) / len(names)
            for key in ("pass@1", f"pass@{settings.benchmark_k}")
        }
    write_json(out / "summary.json", summary)
    return summary
