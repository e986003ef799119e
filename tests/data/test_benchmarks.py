"""Benchmark loaders: every offline set loads with its row count and normalised answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from entropy_rl.data.benchmarks import (
    BENCHMARKS,
    PAPER_BENCHMARKS,
    SAMPLES,
    benchmark_file,
    load_benchmark,
)

ROWS = {
    "math500": 500, "aime24": 30, "aime25": 30, "amc23": 40,
    "minerva_math": 272, "olympiadbench": 675, "gsm8k": 1319, "omni_math": 2821,
}  # fmt: skip


@pytest.mark.parametrize("name", list(ROWS))
def test_every_benchmark_loads_from_its_local_file(name, benchmark_dir):
    rows = load_benchmark(name, benchmark_dir / name / "test.jsonl")
    assert len(rows) == ROWS[name]
    assert all(row.problem.strip() and row.answer.strip() for row in rows)
    assert len({row.id for row in rows}) == len(rows)


def test_answers_are_normalised_like_the_evaluation_kits(benchmark_dir):
    amc = load_benchmark("amc23", benchmark_dir / "amc23" / "test.jsonl")
    assert amc[0].answer == "27"  # 27.0 in the file
    gsm = load_benchmark("gsm8k", benchmark_dir / "gsm8k" / "test.jsonl")
    assert gsm[0].answer == "18"  # after '####'
    minerva = load_benchmark("minerva_math", benchmark_dir / "minerva_math" / "test.jsonl")
    assert minerva[0].answer == "1.6"  # the last \boxed{} of the solution
    olympiad = load_benchmark("olympiadbench", benchmark_dir / "olympiadbench" / "test.jsonl")
    assert olympiad[0].answer == "2" and "$" not in "".join(r.answer for r in olympiad)
    assert load_benchmark("math500", benchmark_dir / "math500" / "test.jsonl", limit=3)[
        0
    ].answer == ("\\left( 3, \\frac{\\pi}{2} \\right)")


def test_omni_math_keeps_domain_and_difficulty_and_closes_unbalanced_braces(benchmark_dir):
    rows = load_benchmark("omni_math", benchmark_dir / "omni_math" / "test.jsonl")
    assert rows[0].answer == "115440" and rows[0].extra["difficulty"] == 8.0
    assert rows[0].extra["domain"][0].startswith("Mathematics -> Algebra")
    # upstream writes \frac{5055}{2^{15} (a brace left open); the loader closes it
    assert rows[183].answer == "\\frac{5055}{2^{15}}"
    assert all(r.answer.count("{") == r.answer.count("}") for r in rows)


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_the_package_ships_the_first_rows_of_every_set_unchanged(name, benchmark_dir):
    sample = load_benchmark(name, benchmark_file(SAMPLES, name))
    assert len(sample) == 8
    assert sample == load_benchmark(name, benchmark_dir / name / "test.jsonl", limit=8)
    assert benchmark_file(None, name) is None  # the hub
    assert benchmark_file("data/{name}/test.jsonl", name).as_posix() == f"data/{name}/test.jsonl"


def test_the_paper_table_has_seven_sets_and_gsm8k_stays_available():
    assert len(PAPER_BENCHMARKS) == 7 and set(PAPER_BENCHMARKS) | {"gsm8k"} == set(BENCHMARKS)


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown benchmark 'math5000'; known benchmarks: math500, aime24"
    ):
        load_benchmark("math5000", "x.jsonl")
    assert set(BENCHMARKS) == set(ROWS)


def test_malformed_row_names_the_file_line_and_field(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    rows = [{"question": "1+1?", "answer": "so #### 2"}, {"question": "2+2?", "answer": "four"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        ValueError, match=r"gsm8k\.jsonl, line 2: field 'answer' has no '#### <number>' line"
    ):
        load_benchmark("gsm8k", path)
    path.write_text(json.dumps({"problem": "x", "answer": ""}) + "\n")
    with pytest.raises(ValueError, match=r"line 1: field 'answer' is missing or empty"):
        load_benchmark("math500", path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"line 1: not valid JSON"):
        load_benchmark("math500", path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_benchmark("math500", tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    "profile", ["paper-qwen2.5-0.5b.yaml", "paper-qwen2.5-7b.yaml", "paper-qwen2.5-32b.yaml"]
)
def test_the_paper_profiles_evaluate_the_papers_seven_benchmarks(profile):
    from entropy_rl.config import load_profile
    from tests.pipeline.conftest import REPO

    config = load_profile(REPO / "config" / profile)
    assert config["evaluate"]["benchmarks"] == list(PAPER_BENCHMARKS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"problem": "1+1", "answer": "2"}\n[1, 2]\n', "line 2: a row must be a JSON object, got list"),
        (b'{"problem": "1+1", "answer": "2"}\n{"problem": "\xff\xfe"}\n', "line 2: not UTF-8 text"),
        (b'{"problem": "' + b"x" * (2 << 20) + b'", "answer": "1"}\n', "line 1: longer than 1,048,576 bytes"),
        (b'{"problem": "1+1", "answer": [1, 2]}\n', "line 1: "),
        (b'{"problem": "1+1"\n', "line 1: not valid JSON"),
    ],
)  # fmt: skip
def test_a_bad_benchmark_line_is_one_error_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "aime24.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError) as raised:
        load_benchmark("aime24", path)
    assert str(raised.value).startswith(f"{path}, line ")
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_benchmark_pattern_with_another_placeholder_is_refused():
    with pytest.raises(ValueError, match=r"only|no other"):
        benchmark_file("data/{name}/{split}.jsonl", "aime24")
    assert benchmark_file("data/{name}/test.jsonl", "aime24") == Path("data/aime24/test.jsonl")
