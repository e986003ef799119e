"""The verifier: extract the last ``\\boxed{...}``, compare it with the reference, reward 1 or 0.

- Extraction scans braces by hand in one pass, linear in the text's length (nested braces work;
  unbalanced ones mean "no answer").
- Plain numbers on both sides (``85``, ``-3``, ``0.50``, ``1,000``) are compared exactly as
  fractions: microseconds, which is what the toy world's thousands of rollouts need.
- Anything else goes to math-verify with LaTeX extraction only. Its ``ExprExtractionConfig``
  parses with sympy's ``parse_expr``, which evaluates Python: model text never reaches it.
- Time is bounded: answers longer than ``MAX_ANSWER_CHARS`` or nested deeper than
  ``MAX_BRACE_DEPTH`` are wrong without parsing, and each symbolic comparison runs under a hard
  wall-clock deadline (``TIMEOUT_S``). In the main thread it is a ``SIGALRM`` timer that raises a
  ``BaseException``, so no ``except Exception`` inside the parser can swallow it. Signals reach
  the main thread only, so a grading from another thread runs in a worker process (its own main
  thread, the same timer), which is killed and replaced if it has not answered within
  ``3 * TIMEOUT_S``. math-verify's own timeouts are off: they use the same signal and swallow
  their own timeout errors.
- No string makes it raise: any failure is a wrong answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from fractions import Fraction
from functools import lru_cache

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_BRACE_DEPTH",
    "TIMEOUT_S",
    "extract_boxed",
    "grade",
    "graded_reward",
    "reward",
]

# math-verify warns on every call that its own timeouts are off: ours replace them (see above)
logging.getLogger("math_verify").setLevel(logging.ERROR)

MAX_ANSWER_CHARS = 300
MAX_BRACE_DEPTH = 12
TIMEOUT_S = 2.0


class VerifierTimeout(BaseException):  # a BaseException, so that parsers cannot swallow it
    """The symbolic comparison ran past its deadline."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise ``VerifierTimeout`` in the main thread after ``seconds`` (no-op in other threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise VerifierTimeout

    previous_handler = signal.signal(signal.SIGALRM, expire)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        except VerifierTimeout:  # expired on the way out: the block is over anyway
            signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_timer[0] > 0:  # someone else's timer was running: give it back
            signal.setitimer(signal.ITIMER_REAL, *previous_timer)


def _brace_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif char == "}":
            depth -= 1
    return deepest


_BOXED = re.compile(r"\\boxed\s*\{|\\fbox\s*\{")
_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$|^[-+]?\.\d+$")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, else None.

    One pass over the text (linear time whatever it holds): a stack of the open braces, each
    marked when it opens a box; a box closes with the brace that brings the stack back below it.
    Escaped braces (``\\{``, ``\\}``) do not count."""
    if not isinstance(text, str):
        return None
    box_braces = {match.end() - 1 for match in _BOXED.finditer(text)}
    if not box_braces:
        return None
    stack: list[int] = []
    last: tuple[int, int] | None = None  # the braces of the box that opens last
    for i, char in enumerate(text):
        if char not in "{}" or (i and text[i - 1] == "\\" and i not in box_braces):
            continue
        if char == "{":
            stack.append(i)
        elif stack:
            opened = stack.pop()
            if opened in box_braces and (last is None or opened > last[0]):
                last = (opened, i)
    return text[last[0] + 1 : last[1]].strip() if last else None


def _strip(answer: str) -> str:
    """Drop what never changes a math answer: outer ``$``, LaTeX spacing, a final period."""
    answer = answer.strip().strip("$").strip()
    answer = re.sub(r"\\[!,;: ]|\\quad", " ", answer)
    answer = re.sub(r"^\\text\{(.*)\}$", r"\1", answer).strip()
    return answer.rstrip(".").strip()


def _as_number(answer: str) -> Fraction | None:
    compact = answer.replace(" ", "")
    if len(compact) > 40 or not _NUMBER.match(compact):
        return None
    return Fraction(compact.replace(",", ""))


@lru_cache(maxsize=4096)
def _parse_latex(answer: str):
    from math_verify import LatexExtractionConfig, parse

    return parse(
        "\\boxed{" + answer + "}",
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0)],
        parsing_timeout=None,
    )


@lru_cache(maxsize=1)
def _warm_up() -> None:
    """Parse once without a deadline: the parser's first call builds its grammar (about a second)."""
    from math_verify import verify

    verify(_parse_latex("\\frac{1}{2}"), _parse_latex("0.5"), timeout_seconds=None)


def _math_verify_in_main_thread(reference: str, answer: str) -> bool:
    from math_verify import verify

    _warm_up()
    try:
        with _deadline(TIMEOUT_S):
            gold, pred = _parse_latex(reference), _parse_latex(answer)
            if not gold or not pred:
                return False
            return bool(verify(gold, pred, timeout_seconds=None))
    except (Exception, VerifierTimeout):
        return False


def _serve() -> None:
    """The grading worker's loop (``python -m entropy_rl.rewards``): a JSON ``[reference,
    answer]`` line in, ``1`` or ``0`` out, until its input closes."""
    _warm_up()
    print("ready", flush=True)
    for line in sys.stdin:
        try:
            reference, answer = json.loads(line)
            equal = _math_verify_in_main_thread(str(reference), str(answer))
        except ValueError:
            equal = False
        print(int(equal), flush=True)


class _GradingWorker:
    """A process that grades for threads other than the main one (signals reach only the main
    thread, so only a process of its own can bound their time). A fresh interpreter running
    ``python -m entropy_rl.rewards`` (no fork of a threaded process, no rerun of the caller's
    script), started on first use; killed and replaced when an answer takes longer than
    ``3 * TIMEOUT_S``."""

    START_S = 120.0  # starting Python and importing math-verify

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None

    def _reply(self, seconds: float) -> str | None:
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        return self.process.stdout.readline().strip() if ready else None

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entropy_rl.rewards"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        if self._reply(self.START_S) != "ready":
            self._stop()
            raise TimeoutError("the grading worker did not start")

    def _stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def equal(self, reference: str, answer: str) -> bool:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self._start()
            assert self.process is not None and self.process.stdin is not None
            self.process.stdin.write(json.dumps([reference, answer]) + "\n")
            self.process.stdin.flush()
            reply = self._reply(3 * TIMEOUT_S)
            if reply is None:  # stuck where no signal reaches: the next grading gets a new one
                self._stop()
            return reply == "1"


_WORKER = _GradingWorker()


def _math_verify_equal(reference: str, answer: str) -> bool:
    if threading.current_thread() is threading.main_thread():
        return _math_verify_in_main_thread(reference, answer)
    return _WORKER.equal(reference, answer)


def grade(response: str, reference: str) -> bool:
    """Is the last boxed answer of ``response`` equal to ``reference`` (a LaTeX answer string)?"""
    try:
        extracted = extract_boxed(response)
        if (
            extracted is None
            or len(extracted) > MAX_ANSWER_CHARS
            or _brace_depth(extracted) > MAX_BRACE_DEPTH
        ):
            return False
        answer, gold = _strip(extracted), _strip(str(reference))
        if not answer:
            return False
        answer_number, gold_number = _as_number(answer), _as_number(gold)
        if answer_number is not None and gold_number is not None:
            return answer_number == gold_number
        if answer.replace(" ", "") == gold.replace(" ", ""):
            return True
        return _math_verify_equal(gold, answer)
    except (Exception, VerifierTimeout):  # a verifier never crashes a run: unparsable means wrong
        return False


def graded_reward(response: str, reference: str, format_penalty: float = 0.0) -> tuple[float, bool]:
    """``(reward, correct)`` from one grading: the reward is 1 if correct, 0 if wrong,
    ``-format_penalty`` if there is no boxed answer at all (then it is wrong too)."""
    correct = grade(response, reference)
    if not correct and format_penalty and extract_boxed(response) is None:
        return -float(format_penalty), False
    return (1.0 if correct else 0.0), correct


def reward(response: str, reference: str, format_penalty: float = 0.0) -> float:
    """1 if correct, 0 if wrong, ``-format_penalty`` if there is no boxed answer at all."""
    return graded_reward(response, reference, format_penalty)[0]


if __name__ == "__main__":
    _serve()
