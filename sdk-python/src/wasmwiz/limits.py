"""Per-execution limits with friendly values.

Sizes take ints (bytes) or strings with a unit (``"64MiB"``, ``"1.5 GB"``,
``"512k"``); durations take seconds as a number, a ``datetime.timedelta``
or a string (``"2.5s"``, ``"500ms"``, ``"2m"``); fuel takes an int or a
string such as ``"1e9"`` or ``"10_000_000"``.

Example:
    >>> from wasmwiz import Limits
    >>> Limits(memory="64MiB", timeout=2.5, fuel="1e9")
    Limits(fuel=1000000000, memory=67108864, timeout=2.5)
    >>> parse_size("1.5KiB"), parse_duration("250ms")
    (1536, 0.25)
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from typing import Any, Optional, Union

from ._proto import execution_pb2

__all__ = [
    "DurationLike",
    "FuelLike",
    "Limits",
    "LimitsLike",
    "SizeLike",
    "parse_duration",
    "parse_fuel",
    "parse_size",
]

#: A size in bytes: an int, or a string such as ``"64MiB"``.
SizeLike = Union[int, str]
#: A duration: seconds (int or float), a ``timedelta``, or ``"2.5s"``/``"500ms"``.
DurationLike = Union[int, float, str, datetime.timedelta]
#: A fuel amount: an int, or a string such as ``"1e9"``.
FuelLike = Union[int, str]

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}

_DURATION_UNITS: dict[str, float] = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}

_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Zµ]*)\s*$")


def parse_size(value: SizeLike) -> int:
    """Parse a size in bytes.

    ``k``/``M``/``G`` and ``KiB``/``MiB``/``GiB`` are powers of 1024,
    ``KB``/``MB``/``GB`` powers of 1000; units are case-insensitive.

    Args:
        value: Bytes as an int, or a string with an optional unit.

    Returns:
        The size in bytes (rounded up to a whole byte).

    Raises:
        ValueError: For a negative value or an unknown unit.

    Example:
        >>> parse_size("64MiB"), parse_size("2 GB"), parse_size(4096)
        (67108864, 2000000000, 4096)
    """
    if isinstance(value, bool):
        raise TypeError("a size must be an int or a string, not bool")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}")
        return value
    if not isinstance(value, str):
        raise TypeError(f"a size must be an int or a string, not {type(value).__name__}")
    match = _NUMBER_UNIT.match(value.replace("_", ""))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"not a size: {value!r} (try '64MiB', '1GB' or a number of bytes)")
    return math.ceil(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(value: DurationLike) -> float:
    """Parse a duration into seconds.

    Args:
        value: Seconds (int or float), a ``timedelta``, or a string with a
            unit: ``ms``, ``us``, ``s``, ``m``/``min``, ``h`` (no unit: seconds).

    Returns:
        The duration in seconds.

    Raises:
        ValueError: For a negative value or an unknown unit.

    Example:
        >>> parse_duration(2.5), parse_duration("500ms"), parse_duration("1m")
        (2.5, 0.5, 60.0)
    """
    if isinstance(value, bool):
        raise TypeError("a duration must be a number, a timedelta or a string, not bool")
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _DURATION_UNITS:
            raise ValueError(f"not a duration: {value!r} (try 2.5, '2.5s' or '500ms')")
        seconds = float(match.group(1)) * _DURATION_UNITS[unit]
    else:
        raise TypeError(
            f"a duration must be a number, a timedelta or a string, not {type(value).__name__}"
        )
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"duration must not be negative: {value!r}")
    return seconds


def parse_fuel(value: FuelLike) -> int:
    """Parse a fuel amount.

    Example:
        >>> parse_fuel("1e9"), parse_fuel("10_000"), parse_fuel(5)
        (1000000000, 10000, 5)
    """
    if isinstance(value, bool):
        raise TypeError("fuel must be an int or a string, not bool")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            result = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise ValueError(f"not a fuel amount: {value!r}") from None
            if not as_float.is_integer():
                raise ValueError(f"fuel must be a whole number: {value!r}") from None
            result = int(as_float)
    else:
        raise TypeError(f"fuel must be an int or a string, not {type(value).__name__}")
    if result < 0:
        raise ValueError(f"fuel must not be negative: {value!r}")
    return result


#: The limits, in the order ``repr`` shows them.
_NAMES = ("fuel", "memory", "timeout", "max_output", "fs_bytes", "idle_timeout")


class Limits:
    """Limits of one execution. ``None`` (the default) means the tier's default.

    A value above the tier's maximum makes the server refuse the request with
    :class:`wasmwiz.InvalidArgument` (its violation names the field and the
    maximum).

    Args:
        fuel: Fuel budget (wasmi fuel units); running out ends the run with
            ``Outcome.OUT_OF_FUEL``. An int or e.g. ``"1e9"``.
        memory: Maximum linear memory, e.g. ``"64MiB"`` or bytes.
        timeout: Wall-clock timeout, e.g. ``2.5`` (seconds) or ``"500ms"``.
        max_output: Maximum stdout + stderr, e.g. ``"1MiB"`` or bytes.
            Collected files count towards it too.
        fs_bytes: Maximum bytes of file contents in the guest's filesystem,
            input files included, e.g. ``"16MiB"``. A guest write past it
            fails with ``ENOSPC``; input files over it are refused (before
            uploading, when it is given here).
        idle_timeout: Interactive runs only: the longest the guest may wait
            for stdin at a time, e.g. ``30`` (seconds) or ``"500ms"``; a
            longer wait ends the run with ``Outcome.TIMEOUT``. Waiting does
            not count towards ``timeout``. Sent as ``idle_timeout_ms``.

    Attributes:
        fuel: Fuel budget, or ``None``.
        memory: Memory limit in bytes, or ``None``.
        timeout: Timeout in seconds, or ``None``.
        max_output: Output limit in bytes, or ``None``.
        fs_bytes: Filesystem limit in bytes, or ``None``.
        idle_timeout: Idle timeout in seconds, or ``None``.

    Example:
        >>> Limits(memory="64MiB", timeout=2.5).memory
        67108864
    """

    __slots__ = ("fs_bytes", "fuel", "idle_timeout", "max_output", "memory", "timeout")

    def __init__(
        self,
        *,
        fuel: Optional[FuelLike] = None,
        memory: Optional[SizeLike] = None,
        timeout: Optional[DurationLike] = None,
        max_output: Optional[SizeLike] = None,
        fs_bytes: Optional[SizeLike] = None,
        idle_timeout: Optional[DurationLike] = None,
    ) -> None:
        self.fuel: Optional[int] = None if fuel is None else parse_fuel(fuel)
        self.memory: Optional[int] = None if memory is None else parse_size(memory)
        self.timeout: Optional[float] = None if timeout is None else parse_duration(timeout)
        self.max_output: Optional[int] = None if max_output is None else parse_size(max_output)
        self.fs_bytes: Optional[int] = None if fs_bytes is None else parse_size(fs_bytes)
        self.idle_timeout: Optional[float] = (
            None if idle_timeout is None else parse_duration(idle_timeout)
        )

    @classmethod
    def coerce(cls, value: LimitsLike) -> Optional[Limits]:
        """Accept a :class:`Limits`, a mapping of its arguments, or ``None``.

        Example:
            >>> Limits.coerce({"memory": "1MiB"})
            Limits(memory=1048576)
        """
        if value is None or isinstance(value, Limits):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - set(_NAMES)
            if unknown:
                raise TypeError(f"unknown limit(s) {sorted(unknown)}; use {', '.join(_NAMES)}")
            return cls(**value)
        raise TypeError(f"limits must be a Limits, a dict or None, not {type(value).__name__}")

    def to_proto(self) -> execution_pb2.Limits:
        """The ``wasmwiz.v1.Limits`` message (0 = tier default)."""
        return execution_pb2.Limits(
            fuel=self.fuel or 0,
            memory_bytes=self.memory or 0,
            timeout_ms=_millis(self.timeout),
            max_output_bytes=self.max_output or 0,
            fs_bytes=self.fs_bytes or 0,
            idle_timeout_ms=_millis(self.idle_timeout),
        )

    @classmethod
    def from_proto(cls, msg: execution_pb2.Limits) -> Limits:
        """Build from a ``wasmwiz.v1.Limits`` message (0 fields become ``None``)."""
        limits = cls()
        limits.fuel = msg.fuel or None
        limits.memory = msg.memory_bytes or None
        limits.timeout = msg.timeout_ms / 1000 if msg.timeout_ms else None
        limits.max_output = msg.max_output_bytes or None
        limits.fs_bytes = msg.fs_bytes or None
        limits.idle_timeout = msg.idle_timeout_ms / 1000 if msg.idle_timeout_ms else None
        return limits

    def _items(self) -> tuple[tuple[str, Any], ...]:
        return tuple(
            (name, getattr(self, name)) for name in _NAMES if getattr(self, name) is not None
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Limits):
            return NotImplemented
        return self._items() == other._items()

    def __hash__(self) -> int:
        return hash(self._items())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self._items())
        return f"Limits({inner})"


def _millis(seconds: Optional[float]) -> int:
    """Whole milliseconds for the wire (0: the tier's default); positive never rounds to 0."""
    if seconds is None:
        return 0
    millis = round(seconds * 1000)
    return 1 if millis == 0 and seconds > 0 else millis


#: What ``limits=`` accepts: a :class:`Limits`, a dict of its arguments, or ``None``.
LimitsLike = Union[Limits, Mapping[str, Any], None]
