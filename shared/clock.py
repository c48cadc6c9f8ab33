"""The one clock every service reads: real time, or a simulated office clock for development and tests.

A ``Clock`` has ``now() -> datetime`` (timezone-aware, UTC). Services take it in (``CommandUnit.clock``,
the notifier's timers); the domain never reads it (``decide``/``evolve`` get "now" from the command
context or the event).

The simulated clock (``SimulatedClock``) runs ``speed`` times faster than the wall clock from ``start``,
counted from a wall-clock ``epoch``::

    now = start + (wall_now - epoch) * speed

Every process started with the same three numbers (``RENJA_CLOCK_START``, ``RENJA_CLOCK_SPEED``,
``RENJA_CLOCK_EPOCH``) computes the same simulated time, whenever it started: ``renja up --clock
2023-05-15T08:00+07:00 --speed 600`` fixes the epoch once and hands all three to every process. Events then
record simulated times (``occurred_at``), and the notifier's timers fire on simulated time. Production
refuses a simulated clock at start-up (``shared.settings.ServiceSettings``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where a service takes "now" from."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


def wall_now() -> datetime:
    """The machine's real time (aware, UTC)."""
    return datetime.now(UTC)


class SystemClock:
    """The real clock (production and the default)."""

    speed: float = 1.0

    def now(self) -> datetime:
        return wall_now()

    def __repr__(self) -> str:
        return "SystemClock()"


@dataclass(frozen=True)
class SimulatedClock:
    """Simulated office time: ``start`` at wall instant ``epoch``, then ``speed`` simulated seconds per
    wall second. ``start`` and ``epoch`` must be aware; ``speed`` > 0. ``wall`` is the real clock (a seam
    for unit tests). Raises ``ValueError`` for a naive instant or a speed that is not positive."""

    start: datetime
    speed: float = 1.0
    epoch: datetime = field(default_factory=wall_now)
    wall: Callable[[], datetime] = field(default=wall_now, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("start", "epoch"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"the simulated clock's {name} must be timezone-aware, got {value.isoformat()}")
        if not self.speed > 0:
            raise ValueError(f"the simulated clock's speed must be > 0, got {self.speed}")

    def now(self) -> datetime:
        elapsed = (self.wall() - self.epoch).total_seconds()
        return (self.start + timedelta(seconds=elapsed * self.speed)).astimezone(UTC)

    def wall_seconds(self, simulated: timedelta) -> float:
        """How many wall-clock seconds a simulated span lasts (e.g. to report lateness in real seconds)."""
        return simulated.total_seconds() / self.speed


def clock_of(start: datetime | None, speed: float = 1.0, epoch: datetime | None = None) -> Clock:
    """``SystemClock()`` without ``start``, else ``SimulatedClock(start, speed, epoch)`` (``epoch``
    defaults to now: right for one process, but processes that must agree need the same epoch)."""
    if start is None:
        return SystemClock()
    return SimulatedClock(start=start, speed=speed, epoch=epoch or wall_now())


def speed_of(clock: Clock) -> float:
    """Simulated seconds per wall second (1.0 for the real clock)."""
    return float(getattr(clock, "speed", 1.0))
