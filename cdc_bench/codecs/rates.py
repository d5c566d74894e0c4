"""A codec's rate knob, declared once as its options are: what values it takes, its default points, its name.

``rate = Rate.ints(0, 51, points=(47, 42, 37), label="QP")``, ``Rate.reals(1, 2000, log=True, ...)`` or
``Rate.choice(("lo", "mi", "hi"), label="model")``: the codec base derives from it the validation of every rate
point (before a sweep starts, and of a rate field read from a bitstream), the matched-bitrate search domain, the
error message and the label tables and figures print. No adapter writes a rate validator.

A real knob keeps integral values as integers (a JPEG 2000 ratio of 190 is stored as ``190``, never ``190.0``),
so one rate point has one text form in the store key however it was typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from ..errors import CodecConfigError, CodecError


def _number(value: float | None) -> str:
    return "" if value is None else (str(int(value)) if float(value).is_integer() else format(value, "g"))


@dataclass(frozen=True)
class RateDomain:
    """How a codec's rate knob can be searched (for matched bitrates): integers or reals in ``[low, high]``,
    or only the listed ``points``."""

    kind: str                       # "int" | "float" | "points"
    low: float = 0.0
    high: float = 0.0
    points: tuple = ()
    log: bool = False               # search a real knob on a log scale (e.g. a compression ratio)

    def candidates(self) -> list[Any]:
        """Every value of a discrete knob, in increasing order."""
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        try:
            return sorted(self.points)
        except TypeError:  # points that do not order (names): keep the codec's order
            return list(self.points)


@dataclass(frozen=True)
class Rate:
    """One codec's rate knob. Build it with :meth:`ints`, :meth:`reals` or :meth:`choice`."""

    kind: str                               # "int" | "real" | "choice"
    points: tuple = ()                      # the default rate points, low rate first where natural
    label: str = "quality"                  # the knob's name: "quality", "QP", "lambda", "model"
    low: float | None = None                # inclusive bounds (int, real)
    high: float | None = None
    open_low: bool = False                  # the low bound itself is not valid (a ratio > 1)
    log: bool = False                       # search a real knob on a log scale
    note: str = ""                          # what the value means, e.g. "larger = lower rate"
    search: tuple[float, float] | None = None  # the matched-bitrate search range, where narrower than the bounds

    @classmethod
    def ints(cls, low: int, high: int, points: Sequence[int] | None = None, label: str = "quality",
             note: str = "") -> "Rate":
        """Integers in ``low..high``; the default points are all of them unless given."""
        return cls("int", tuple(points) if points is not None else tuple(range(low, high + 1)), label, low, high,
                   note=note)

    @classmethod
    def reals(cls, low: float | None, high: float | None, points: Sequence[float], label: str = "quality", *,
              log: bool = False, open_low: bool = False, note: str = "",
              search: tuple[float, float] | None = None) -> "Rate":
        """Finite numbers in ``[low, high]`` (``open_low``: above ``low``)."""
        return cls("real", tuple(points), label, low, high, open_low, log, note, search)

    @classmethod
    def choice(cls, points: Sequence[Any], label: str = "quality", note: str = "") -> "Rate":
        """Only the listed points (released models, quality levels)."""
        return cls("choice", tuple(points), label, note=note)

    def with_points(self, points: Sequence[Any]) -> "Rate":
        return replace(self, points=tuple(points))

    # -- what the base class derives --------------------------------------------------------------------------
    def parse(self, value: Any, codec: str, error: type[CodecError] = CodecConfigError) -> Any:
        """The rate point in the knob's own type; raises ``error`` (a :class:`CodecError`) naming what is valid:
        ``jpeg: rate point quality 500 is not valid (...); expected an integer quality in 1..100``."""
        if self.kind == "choice":
            for point in self.points:
                if str(point) == str(value).strip() or (_is_number(point) and _same_number(point, value)):
                    return point
            raise error(f"{codec}: {self.label} {value!r} is not valid: {value!r} is not one of "
                        f"{', '.join(map(str, self.points))} (the rate points{'; ' + self.note if self.note else ''})")
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        below = self.low is not None and (number <= self.low if self.open_low else number < self.low)
        above = self.high is not None and number > self.high
        if not math.isfinite(number) or below or above or (self.kind == "int" and not number.is_integer()):
            raise error(f"{codec}: rate point {self.label} {value!r} is not valid (not a {self.label} this codec "
                        f"takes); {self.describe()}")
        return int(number) if number.is_integer() else number

    def describe(self) -> str:
        """What values are valid, in words (for error messages)."""
        if self.kind == "choice":
            return f"expected one of {', '.join(map(str, self.points))} ({self.label})"
        kind = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            span = f"{'above ' + _number(self.low) + ' up to' if self.open_low else 'in'} " \
                   f"{_number(self.low) + '..' if not self.open_low else ''}{_number(self.high)}"
        elif self.low is not None:
            span = f"{'>' if self.open_low else '>='} {_number(self.low)}"
        elif self.high is not None:
            span = f"<= {_number(self.high)}"
        else:
            span = ""
        return f"expected {kind} {self.label} {span}".rstrip() + (f" ({self.note})" if self.note else "")

    def title(self) -> str:
        """The label tables and ``cdc-bench codecs`` print: ``QP (0-51)``, ``lambda (larger = lower rate)``."""
        parts = []
        if self.kind == "int" and self.low is not None and self.high is not None:
            parts.append(f"{_number(self.low)}-{_number(self.high)}")
        if self.note:
            parts.append(self.note)
        return f"{self.label} ({', '.join(parts)})" if parts else self.label

    def domain(self) -> RateDomain:
        """How matched bitrates may search this knob."""
        if self.kind == "int" and self.low is not None and self.high is not None:
            return RateDomain("int", self.low, self.high)
        if self.kind == "real":
            low, high = self.search or (self.low, self.high)
            if low is not None and high is not None:
                return RateDomain("float", low, high, log=self.log)
        return RateDomain("points", points=self.points)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_number(point: Any, value: Any) -> bool:
    try:
        return float(value) == float(point)
    except (TypeError, ValueError):
        return False
