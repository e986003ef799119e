"""Validated settings: frozen dataclasses whose fields carry their allowed values.

    @dataclass(frozen=True)
    class TrainSettings(Settings):
        section: ClassVar[str] = "train"
        lr: float = number(1e-4, 0.0, low_open=True, doc="learning rate")

Every bad value fails at construction with the key, the allowed range and the value
(``train.lr must be in (0, inf], got 0.0``); unknown keys list the known ones. NaN is never a
value, and an infinite one (YAML's ``.inf``) only where the field's default is that infinity (its
documented "off", as dual-clip's ``clip_ratio_c``). The ranges live in
the field metadata, so error messages, the docs and the table-driven tests read one source.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["UNBOUNDED", "Settings", "allowed_values", "choice", "integer", "mapping", "number"]

# integer() writes "no bound" as ±2**63; an integer bound this large reads as ±inf
UNBOUNDED = 2**62


def number(
    default: float,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    doc: str = "",
) -> Any:
    """A real-valued field allowed in ``[low, high]`` (``(`` / ``)`` where open)."""
    bounds = {"low": low, "high": high, "low_open": low_open, "high_open": high_open}
    return field(default=default, metadata={"range": bounds, "kind": "number", "doc": doc})


def integer(default: int, low: int = -(2**63), high: int = 2**63, *, doc: str = "") -> Any:
    """An integer field allowed in ``[low, high]``."""
    bounds = {"low": low, "high": high, "low_open": False, "high_open": False}
    return field(default=default, metadata={"range": bounds, "kind": "integer", "doc": doc})


def choice(default: Any, options: tuple, doc: str = "") -> Any:
    """A field allowed to take one of ``options``."""
    return field(default=default, metadata={"choices": options, "doc": doc})


def _fmt(value: float) -> str:
    if isinstance(value, int) and abs(value) >= UNBOUNDED:
        return "inf" if value > 0 else "-inf"
    return f"{value:g}"


def allowed_values(f: dataclasses.Field) -> str:
    """The allowed values of a settings field, as error messages and docs print them."""
    if "choices" in f.metadata:
        return "one of " + ", ".join(repr(c) for c in f.metadata["choices"])
    r = f.metadata["range"]
    interval = (
        f"{'(' if r['low_open'] else '['}{_fmt(r['low'])}, {_fmt(r['high'])}"
        f"{')' if r['high_open'] else ']'}"
    )
    return ("an integer in " if f.metadata["kind"] == "integer" else "in ") + interval


def _valid(value: Any, f: dataclasses.Field) -> bool:
    if "choices" in f.metadata:
        return any(value == c and type(value) is type(c) for c in f.metadata["choices"])
    if isinstance(value, bool):
        return False
    if f.metadata["kind"] == "integer" and not isinstance(value, int):
        return False
    if not isinstance(value, int | float) or math.isnan(value):
        return False
    if math.isinf(value) and value != f.default:  # YAML's .inf: only where it is the "off" default
        return False
    r = f.metadata["range"]
    above = value > r["low"] if r["low_open"] else value >= r["low"]
    below = value < r["high"] if r["high_open"] else value <= r["high"]
    return above and below


def mapping(value: Any, where: str) -> dict[str, Any]:
    """``value`` as a dict of settings (``None``: empty); anything else is an error naming
    ``where`` (a config section written as a list, a number, a string)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping of key: value settings, got {_shown(value)}")
    return dict(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return {"str": "a string", "bool": "true or false", "int": "an integer",
                "float": "a number", "dict": "a mapping", "list": "a list"}.get(annotation.__name__, annotation.__name__)  # fmt: skip
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(
            "null" if a is type(None) else _type_name(a) for a in typing.get_args(annotation)
        )
    if origin in (list, tuple):
        return f"a list of {_type_name(typing.get_args(annotation)[0])}s"
    if origin is dict:
        return f"a mapping to {_type_name(typing.get_args(annotation)[1])}s"
    return str(annotation)


def _has_type(value: Any, annotation: Any) -> bool:
    """Whether a YAML value fits a field's annotation (str, bool, int, float, None, unions,
    lists/tuples and dicts of those, Any)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, a) for a in typing.get_args(annotation))
    if origin in (list, tuple):
        item = typing.get_args(annotation)[0]
        return isinstance(value, list | tuple) and all(_has_type(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(annotation)
        return isinstance(value, Mapping) and all(
            _has_type(k, key) and _has_type(v, item) for k, v in value.items()
        )
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(annotation, type) and isinstance(value, annotation)


@functools.cache
def _annotations(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@dataclass(frozen=True)
class Settings:
    """Base of every settings dataclass: validates each annotated field, then ``check()``."""

    section: ClassVar[str] = "settings"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if "range" not in f.metadata and "choices" not in f.metadata:
                value, annotation = getattr(self, f.name), _annotations(type(self))[f.name]
                if not _has_type(value, annotation):
                    raise ValueError(
                        f"{self.section}.{f.name} must be {_type_name(annotation)}, got {_shown(value)}"
                    )
                continue
            value = getattr(self, f.name)
            if (
                f.metadata.get("kind") == "number"
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                value = float(value)  # YAML writes 1 for 1.0
                object.__setattr__(self, f.name, value)
            if not _valid(value, f):
                raise ValueError(
                    f"{self.section}.{f.name} must be {allowed_values(f)}, got {value!r}"
                )
        self.check()

    def check(self) -> None:
        """Constraints between fields; subclasses extend."""

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None = None):
        """Build from a (YAML) mapping; unknown keys are errors that list the known ones."""
        values = mapping(values, cls.section)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} in {cls.section}; known keys: {sorted(known)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)
