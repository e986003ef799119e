"""The verifier: boxed extraction, exact and symbolic comparison, real answer formats, fuzzing."""

from __future__ import annotations

import re
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entropy_rl.data.benchmarks import BENCHMARKS, load_benchmark
from entropy_rl.rewards import (
    TIMEOUT_S,
    _math_verify_equal,
    _strip,
    extract_boxed,
    grade,
    graded_reward,
    reward,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{85}.", "85"),
        ("\\boxed{1} then \\boxed{2}", "2"),  # the last one
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
        ("\\boxed{x^{2}+\\sqrt{y}}", "x^{2}+\\sqrt{y}"),
        ("\\boxed {7}", "7"),
        ("\\fbox{3}", "3"),
        ("\\boxed{unbalanced", None),
        ("no answer here", None),
        ("\\boxed{a} \\boxed{b", "a"),  # an unclosed last box falls back to the one before
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("response", "reference", "correct"),
    [
        ("\\boxed{85}", "85", True),
        ("\\boxed{085}", "85", True),
        ("\\boxed{1,000}", "1000", True),
        ("\\boxed{27.0}", "27", True),
        ("\\boxed{-3}", "3", False),
        ("\\boxed{\\frac{1}{2}}", "0.5", True),
        ("\\boxed{\\dfrac{\\pi}{2}}", "\\frac{\\pi}{2}", True),
        (
            "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}",
            "\\left( 3, \\frac{\\pi}{2} \\right)",
            True,
        ),
        ("\\boxed{(3, \\pi/2)}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
        ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
        ("\\boxed{x+1}", "1+x", True),
        ("\\boxed{x+2}", "1+x", False),
        ("\\boxed{\\text{(C)}}", "\\text{(C)}", True),
        ("85", "85", False),  # no boxed answer, no reward
        ("\\boxed{}", "0", False),
    ],
)
def test_grade(response, reference, correct):
    assert grade(response, reference) is correct


def test_reward_values_and_format_penalty():
    assert reward("\\boxed{4}", "4") == 1.0
    assert reward("\\boxed{5}", "4") == 0.0
    assert reward("4", "4") == 0.0
    assert reward("4", "4", format_penalty=0.5) == -0.5
    assert reward("\\boxed{5}", "4", format_penalty=0.5) == 0.0


@pytest.mark.parametrize("penalty", [0.0, 0.5])
@pytest.mark.parametrize(
    ("response", "reference"),
    [("\\boxed{4}", "4"), ("\\boxed{5}", "4"), ("4", "4"), ("\\boxed{x+1}", "1+x"), ("", "0")],
)
def test_one_grading_gives_both_the_reward_and_the_accuracy(response, reference, penalty):
    assert graded_reward(response, reference, penalty) == (
        reward(response, reference, penalty),
        grade(response, reference),
    )


def _benchmark_rows(benchmark_dir, name):
    return load_benchmark(name, benchmark_dir / name / "test.jsonl")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_reference_answers_are_graded_correct_and_other_rows_answers_wrong(name, benchmark_dir):
    rows = _benchmark_rows(benchmark_dir, name)
    # as a model would write it
    assert all(grade(f"So the final answer is $\\boxed{{{r.answer}}}$.", r.answer) for r in rows)
    # and through math-verify alone, without the exact-string shortcut
    assert all(_math_verify_equal(_strip(r.answer), _strip(r.answer)) for r in rows)
    # another row's answer is wrong, unless the two answers are the same number or expression
    for row, other in zip(rows, rows[1:] + rows[:1], strict=True):
        if grade(f"\\boxed{{{other.answer}}}", row.answer):
            a, b = _strip(row.answer).replace(" ", ""), _strip(other.answer).replace(" ", "")
            assert a == b or a.split("=")[-1] == b.split("=")[-1], (row.answer, other.answer)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.text(alphabet="\\{}^_()[]0123456789+-*/=.,xyz boxedfracsqrt", max_size=300),
        st.builds(
            lambda s: "\\boxed{" + s + "}",
            st.text(alphabet="\\{}^_()0123456789+-*/.xfracsqrt^", max_size=80),
        ),
        st.builds(lambda n: "\\boxed{" + "{" * n + "1" + "}" * n + "}", st.integers(0, 500)),
        st.builds(lambda d: "\\boxed{" + "9" * d + "}", st.integers(1, 5000)),
    )
)
def test_verifier_never_raises_and_its_deadline_bounds_any_string(text):
    # the contract is the deadline, not a speed: each grading stops at TIMEOUT_S; the margin
    # (2 x TIMEOUT_S more) absorbs a loaded CI machine, a hang would still fail
    for call, allowed in (
        (lambda: grade(text, "1"), (True, False)),
        (lambda: reward(text, "\\frac{1}{2}", format_penalty=1.0), (-1.0, 0.0, 1.0)),
    ):
        start = time.perf_counter()
        assert call() in allowed
        assert time.perf_counter() - start < 3 * TIMEOUT_S


def test_model_text_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w').write('x')",
        f"exec(\"open('{marker}','w')\")",
        f"eval(\"open('{marker}','w')\")",
    ]
    for payload in payloads:
        for text in (f"\\boxed{{{payload}}}", payload, f"The answer is {payload}"):
            for reference in ("1", "x", payload):
                grade(text, reference)
    assert not marker.exists()


def _nested_scan(text: str) -> str | None:
    """The definition, scanned the slow way: from each box's brace (last first) to the brace that
    closes it."""
    for match in reversed(list(re.finditer(r"\\boxed\s*\{|\\fbox\s*\{", text))):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] in "{}" and text[i - 1] != "\\":
                depth += 1 if text[i] == "{" else -1
                if depth == 0:
                    return text[start:i].strip()
    return None


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(
        st.sampled_from(["\\boxed{", "\\fbox {", "{", "}", "\\{", "\\}", "1", "x", " ", "\\"]),
        max_size=16,
    ).map("".join)
)
def test_extract_boxed_in_one_pass_equals_the_scan_from_every_box(text):
    assert extract_boxed(text) == _nested_scan(text)


def test_extract_boxed_is_linear_in_the_length_of_unclosed_boxes():
    # the scan from every box is quadratic: 280 KB of "\boxed{" would take minutes
    for repeats in (4_000, 40_000):
        start = time.perf_counter()
        assert extract_boxed("\\boxed{" * repeats) is None
        assert time.perf_counter() - start < 5.0


def test_grading_off_the_main_thread_keeps_its_deadline():
    results: dict[str, tuple[bool, float]] = {}

    def grade_in_thread(name: str, response: str, reference: str) -> None:
        start = time.perf_counter()
        results[name] = (grade(response, reference), time.perf_counter() - start)

    cases = {
        "hangs": ("\\boxed{10^{10^{10}}}", "1"),
        "equal": ("\\boxed{\\frac{1}{2}}", "0.5"),
        "symbolic": ("\\boxed{x^2+2x+1}", "(x+1)^2"),
    }
    for name, (response, reference) in cases.items():
        thread = threading.Thread(target=grade_in_thread, args=(name, response, reference))
        thread.start()
        thread.join(timeout=60)  # the first grading starts the worker process too
        assert not thread.is_alive(), name
    assert results["hangs"][0] is False and results["hangs"][1] < 30
    assert results["equal"][0] is True and results["symbolic"][0] is True
    assert results["symbolic"][1] < 3 * TIMEOUT_S  # the worker was kept
