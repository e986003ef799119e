"""Atomic file output and one writer per run folder: a crash never leaves a half-written result
behind, and two processes never write one run.

Everything the suite writes (metrics, summaries, figures, checkpoints) goes to a temporary file (or
folder) with a unique name in the destination's folder and is renamed into place once complete;
``os.replace`` is atomic on POSIX. Files get the permissions the umask gives (as ``open`` would),
not ``mkstemp``'s private 0600. :func:`run_lock` holds an exclusive lock on a run folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "append_jsonl",
    "atomic_dir",
    "atomic_path",
    "json_lines",
    "read_jsonl",
    "read_metrics",
    "run_lock",
    "write_json",
    "write_jsonl",
    "write_text",
]


def _unwritable(target: Path, err: OSError) -> OSError:
    return OSError(
        err.errno, f"cannot write {target}: {err.strerror}; check the folder is writable"
    )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _follow_umask(path: Path, mode: int = 0o666) -> None:
    """Give ``path`` the permissions ``open``/``mkdir`` would (``mkstemp`` makes files 0600)."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Raises ``OSError`` with the destination named if its folder cannot be created or written, or
    if writing fails (a full disk); ``path`` then keeps its previous content and no temporary file
    is left behind.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise _unwritable(target, err) from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _follow_umask(tmp)
        yield tmp
        os.replace(tmp, target)
    except OSError as err:  # e.g. a full disk: name the file; the previous one is untouched
        raise OSError(err.errno, f"cannot write {target}: {err.strerror or err}") from err
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh folder beside ``path``; swap it in for ``path`` if the block succeeds.

    For outputs that are folders (a saved model): a crash leaves the previous folder, or none,
    never a half-written one. The fresh folder has a unique name (``.<name>.tmp-<random>``); the
    leftovers of a crashed writer are removed first (the caller holds the run's lock).
    """
    target = Path(path)
    try:
        tmp = fresh_dir(target)
    except OSError as err:
        raise _unwritable(target, err) from err
    try:
        yield tmp
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fresh_dir(target: Path) -> Path:
    """A new, uniquely named, empty folder ``.<name>.tmp-<random>`` beside ``target``, after
    removing such folders that a crashed writer left (call it holding the run's lock)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    _follow_umask(tmp, 0o777)
    return tmp


class RunLockedError(OSError):
    """Another process holds the run folder's lock."""


LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive lock on run folder ``folder`` (``<folder>/.lock``, ``flock``) for the
    block: a second writer fails at once with :class:`RunLockedError` naming the holder's pid.

    The kernel drops the lock when its holder dies (``kill -9`` included), so a stale lock file
    never blocks a rerun. A folder the lock created and nothing else wrote to is removed again
    (a command that failed before writing leaves nothing)."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_FILE, "a+")
    except OSError as err:
        raise _unwritable(folder / LOCK_FILE, err) from err
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunLockedError(
                f"{folder} is being written by another entropy-rl process (pid {holder}); wait "
                "for it to finish, or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield folder
        finally:
            if created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
                (folder / LOCK_FILE).unlink()
                folder.rmdir()
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> Path:
    """Write one JSON object per line atomically."""
    return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def append_jsonl(path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one row and flush it to disk (a log that grows step by step; see ``write_jsonl``)."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def json_lines(
    path: str | os.PathLike[str], max_line_bytes: int | None = None
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line of a JSON-lines file. A bad line fails with
    the file and line: longer than ``max_line_bytes`` (never read further), not UTF-8, not JSON."""
    with open(path, "rb") as f:
        for number in itertools.count(1):
            line = f.readline(-1 if max_line_bytes is None else max_line_bytes + 1)
            if not line:
                return
            where = f"{path}, line {number}"
            if max_line_bytes is not None and len(line) > max_line_bytes:
                raise ValueError(
                    f"{where}: longer than {max_line_bytes:,} bytes, the most a line may have"
                )
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{where}: not UTF-8 text ({err.reason} at byte {err.start})"
                ) from None
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg})") from None


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a bad line fails with the file and line number."""
    return [row for _, row in json_lines(path)]


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl``: JSON objects whose ``step`` increases strictly from
    row to row. A duplicated or decreasing step (two writers, a file pasted together) fails with
    the file and line, so no analysis reads a corrupt run."""
    rows, previous = [], None
    for number, row in json_lines(path):
        step = row.get("step") if isinstance(row, dict) else None
        if not isinstance(step, int) or isinstance(step, bool):
            raise ValueError(f"{path}, line {number}: a metrics row needs an integer 'step'")
        if previous is not None and step <= previous:
            raise ValueError(
                f"{path}, line {number}: step {step} follows step {previous} (steps must "
                "increase: two runs wrote this file, or it was edited); rerun this run"
            )
        rows.append(row)
        previous = step
    return rows
