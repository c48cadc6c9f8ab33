"""The simulated office clock (``shared.clock``) and its settings: same time in every process, refused in
production."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from deploy.local.settings import StackSettings
from shared.clock import SimulatedClock, SystemClock, clock_of
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit

START = datetime.fromisoformat("2023-05-15T08:00+07:00")
EPOCH = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


def test_simulated_time_runs_speed_times_faster_from_the_epoch() -> None:
    wall = [EPOCH + timedelta(seconds=10)]
    clock = SimulatedClock(START, speed=600, epoch=EPOCH, wall=lambda: wall[0])
    assert clock.now() == START + timedelta(seconds=6000)
    assert clock.now().tzinfo is UTC
    wall[0] = EPOCH + timedelta(seconds=11)
    assert clock.now() == START + timedelta(seconds=6600)
    assert clock.wall_seconds(timedelta(minutes=10)) == 1.0


def test_two_processes_started_at_different_times_agree() -> None:
    wall = [EPOCH + timedelta(seconds=42)]
    first = SimulatedClock(START, speed=60, epoch=EPOCH, wall=lambda: wall[0])
    wall[0] += timedelta(seconds=5)
    second = SimulatedClock(START, speed=60, epoch=EPOCH, wall=lambda: wall[0])
    assert first.now() == second.now() == START + timedelta(seconds=47 * 60)


def test_bad_simulated_clocks_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimulatedClock(datetime(2023, 5, 15, 8, 0), epoch=EPOCH)
    with pytest.raises(ValueError, match="speed"):
        SimulatedClock(START, speed=0, epoch=EPOCH)


def test_settings_build_the_clock() -> None:
    assert isinstance(ServiceSettings(environment="test").clock(), SystemClock)
    settings = ServiceSettings(environment="test", clock_start=START, clock_speed=600, clock_epoch=EPOCH)
    clock = settings.clock()
    assert isinstance(clock, SimulatedClock)
    assert (clock.start, clock.speed, clock.epoch) == (START, 600, EPOCH)
    assert isinstance(clock_of(None), SystemClock)


def test_production_settings_refuse_the_simulated_clock() -> None:
    secret = "a-private-production-secret-0123456789abcdef"
    ServiceSettings(environment="production", jwt_secret=secret)  # the real clock is fine
    with pytest.raises(ValidationError, match="production refuses the simulated clock"):
        ServiceSettings(environment="production", jwt_secret=secret, clock_start=START, clock_speed=600)


def test_the_stack_hands_the_clock_to_every_process() -> None:
    stack = StackSettings(clock_start=START, clock_speed=600, clock_epoch=EPOCH)
    env = stack.as_env()
    child = ServiceSettings(
        environment="test",
        clock_start=env["RENJA_CLOCK_START"],
        clock_speed=env["RENJA_CLOCK_SPEED"],
        clock_epoch=env["RENJA_CLOCK_EPOCH"],
    )
    assert (child.clock_start, child.clock_speed, child.clock_epoch) == (START, 600, EPOCH)
    assert "RENJA_CLOCK_START" not in StackSettings().as_env()  # the real clock: nothing passed on
