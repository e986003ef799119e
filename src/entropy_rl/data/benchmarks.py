"""Math benchmarks by name, normalised to ``{id, problem, answer}`` from the hub or a local file.

Each benchmark names its dataset on the hub (``datasets``, imported only when used) and how to
read a row: where the question is, and how to turn the row's reference into one LaTeX answer
string, as the standard evaluation kits do:

| name | question | reference answer |
| --- | --- | --- |
| math500 | problem | answer |
| aime24, aime25 | problem | answer (an integer) |
| amc23 | problem (or question) | answer, a float written as an integer when integral |
| minerva_math | problem | the last ``\\boxed{}`` of the solution |
| olympiadbench | context + question | final_answer, a list joined with ", " (``$`` signs dropped) |
| gsm8k | question | the number after ``####`` (thousands separators dropped) |
| omni_math | problem | answer, its unbalanced ``{`` closed (4 rows upstream lack a ``}``) |

A local JSON-lines (or parquet) file with the same fields loads the same way: pass ``path``.
A malformed row fails with the file, the line and the field: a line that is not UTF-8 text, not
JSON, not an object, or longer than ``MAX_ROW_BYTES`` (read no further than that). Fields a set uses to slice its results
(OMNI-MATH's ``domain`` and ``difficulty``) are kept in ``BenchmarkRow.extra``.

The package ships the first eight rows of every set, unchanged (``samples/``, sources and licences
in ``samples/SOURCE.md``): ``benchmark_file("samples", name)`` names that file, so the embedded
default's smoke test runs offline with nothing beside the checkout. The full sets come from the hub
or from local copies named by a file pattern (``data/{name}/test.jsonl``).
"""

from __future__ import annotations

import ast
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entropy_rl.io import json_lines
from entropy_rl.rewards import extract_boxed

__all__ = [
    "BENCHMARKS",
    "MAX_ROW_BYTES",
    "PAPER_BENCHMARKS",
    "SAMPLES",
    "BenchmarkRow",
    "BenchmarkSpec",
    "benchmark_file",
    "load_benchmark",
    "read_rows",
]

MAX_ROW_BYTES = (
    1 << 20
)  # a problem row of a benchmark or dataset file: 1 MiB (the largest is ~10 KB)

SAMPLES = "samples"  # the benchmark_path that names the package's own eight-row samples
_SAMPLE_DIR = Path(__file__).resolve().parent / "samples"


@dataclass(frozen=True)
class BenchmarkRow:
    """One normalised problem; ``extra`` holds the fields a set is sliced by (e.g. difficulty)."""

    id: str
    problem: str
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)


class RowError(ValueError):
    """A row without a usable field."""


def _field(row: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = row.get(name)
        if value not in (None, "", "None"):
            return value
    raise RowError(f"field {' or '.join(repr(n) for n in names)} is missing or empty")


def _number_answer(row: dict[str, Any]) -> str:
    value = _field(row, "answer")
    number = float(value)
    return str(int(number)) if number.is_integer() else str(value)


def _minerva_answer(row: dict[str, Any]) -> str:
    boxed = extract_boxed(str(_field(row, "solution")))
    if not boxed:
        raise RowError("field 'solution' has no \\boxed{} answer")
    return boxed


def _olympiad_answer(row: dict[str, Any]) -> str:
    answers = _field(row, "final_answer")
    if isinstance(answers, str):
        answers = ast.literal_eval(answers) if answers.startswith("[") else [answers]
    parts = [str(a).replace("$", "").strip() for a in answers]
    if not any(parts):
        raise RowError("field 'final_answer' is empty")
    return ", ".join(parts)


def _olympiad_problem(row: dict[str, Any]) -> str:
    question = str(_field(row, "question"))
    context = row.get("context")
    return f"{context}\n{question}" if context not in (None, "", "None") else question


def _gsm8k_answer(row: dict[str, Any]) -> str:
    text = str(_field(row, "answer"))
    if "####" not in text:
        raise RowError("field 'answer' has no '#### <number>' line")
    return text.split("####")[-1].strip().replace(",", "")


def _omni_answer(row: dict[str, Any]) -> str:
    answer = str(_field(row, "answer")).strip()
    depth = 0
    for char in answer:
        depth = depth + 1 if char == "{" else depth - 1 if char == "}" else depth
        if depth < 0:
            raise RowError("field 'answer' closes a brace it never opened")
    return answer + "}" * depth


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark lives on the hub and how to read one of its rows."""

    name: str
    hub_id: str
    hub_config: str | None
    split: str
    problem: Callable[[dict[str, Any]], str]
    answer: Callable[[dict[str, Any]], str]
    extra: tuple[str, ...] = ()  # fields kept beside the problem, e.g. ("domain", "difficulty")

    def normalise(self, row: dict[str, Any], index: int) -> BenchmarkRow:
        row_id = row.get("id", row.get("unique_id", row.get("idx", index)))
        return BenchmarkRow(
            id=str(row_id),
            problem=str(self.problem(row)),
            answer=str(self.answer(row)),
            extra={name: row[name] for name in self.extra if name in row},
        )


def _problem(*names: str) -> Callable[[dict[str, Any]], str]:
    return lambda row: _field(row, *names)


def _text_answer(row: dict[str, Any]) -> str:
    return str(_field(row, "answer"))


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            "math500", "HuggingFaceH4/MATH-500", None, "test", _problem("problem"), _text_answer
        ),
        BenchmarkSpec(
            "aime24", "HuggingFaceH4/aime_2024", None, "train", _problem("problem"), _number_answer
        ),
        BenchmarkSpec(
            "aime25", "math-ai/aime25", None, "test", _problem("problem"), _number_answer
        ),
        BenchmarkSpec(
            "amc23", "math-ai/amc23", None, "test", _problem("problem", "question"), _number_answer
        ),
        BenchmarkSpec(
            "minerva_math",
            "math-ai/minervamath",
            None,
            "test",
            _problem("problem", "question"),
            _minerva_answer,
        ),
        BenchmarkSpec(
            "olympiadbench",
            "Hothan/OlympiadBench",
            "OE_TO_maths_en_COMP",
            "train",
            _olympiad_problem,
            _olympiad_answer,
        ),
        BenchmarkSpec("gsm8k", "openai/gsm8k", "main", "test", _problem("question"), _gsm8k_answer),
        # the hub set has 4,428 problems; the paper's table reports its 2,821-problem rule-gradable
        # subset (the authors' evaluation/data/omni_math_rule/test.jsonl): load that as a local file
        BenchmarkSpec(
            "omni_math",
            "KbsdJames/Omni-MATH",
            None,
            "test",
            _problem("problem"),
            _omni_answer,
            extra=("domain", "difficulty"),
        ),
    )
}

# the seven sets of the paper's results table (Cui et al., 2025); GSM8K is the eighth, kept
PAPER_BENCHMARKS = (
    "math500", "aime24", "aime25", "amc23", "omni_math", "olympiadbench", "minerva_math",
)  # fmt: skip


def benchmark_file(pattern: str | None, name: str) -> Path | None:
    """The local file of benchmark ``name``: the package's sample when ``pattern`` is
    ``"samples"``, ``pattern.format(name=name)`` for a file pattern, ``None`` (the hub) for None."""
    if pattern is None:
        return None
    if pattern == SAMPLES:
        return _SAMPLE_DIR / f"{name}.jsonl"
    try:
        fields = {
            field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None
        }
    except ValueError as err:  # a lone { or }
        raise ValueError(
            f"evaluate.benchmark_path {pattern!r} is not a file pattern ({err})"
        ) from None
    if fields != {"name"}:
        raise ValueError(
            f"evaluate.benchmark_path {pattern!r} must hold the placeholder {{name}} and no other "
            f"(found {sorted(fields) or 'none'}), e.g. data/{{name}}/test.jsonl"
        )
    return Path(pattern.replace("{name}", name))


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a local ``.jsonl`` (one JSON object a line) or ``.parquet`` file. A bad line
    fails with the file and line: not UTF-8, over ``MAX_ROW_BYTES`` (never read further), not JSON,
    or not an object."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pandas as pd  # optional, only for parquet files

        return pd.read_parquet(path).to_dict(orient="records")
    rows = []
    for number, row in json_lines(path, MAX_ROW_BYTES):
        if not isinstance(row, dict):
            raise ValueError(
                f"{path}, line {number}: a row must be a JSON object, got {type(row).__name__}"
            )
        rows.append(row)
    return rows


def _read_hub(spec: BenchmarkSpec) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            f"loading {spec.name} from the hub needs the `datasets` package (pip install datasets); "
            f"or pass a local file with benchmarks.{spec.name}.path"
        ) from err
    return list(datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.split))


def load_benchmark(
    name: str, path: str | Path | None = None, limit: int | None = None
) -> list[BenchmarkRow]:
    """The normalised rows of benchmark ``name``, from ``path`` if given, else from the hub."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(BENCHMARKS)}")
    spec = BENCHMARKS[name]
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"benchmark file {path} for {name} does not exist")
        raw, where = read_rows(path), str(path)
    else:
        raw, where = _read_hub(spec), spec.hub_id
    rows = []
    for index, row in enumerate(raw):
        try:
            rows.append(spec.normalise(row, index))
        except (ValueError, TypeError, SyntaxError, RecursionError) as err:  # any bad field value
            raise ValueError(f"{where}, line {index + 1}: {err}") from err
        if limit is not None and len(rows) >= limit:
            break
    return rows
