"""Fixtures for the sandbox tests: the app on an ephemeral loopback port, real HTTP via httpx, and a
ManualClock that only moves when a test advances it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from models.clock import ManualClock
from sandbox.app import create_app
from sandbox.server import serve_in_thread
from tests.sandbox.support import START, Sim, make_config


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Sim]]:
    """Start a sandbox with `SandboxConfig` fields overridden: `start_sim(limit_calls=3)`."""
    with contextlib.ExitStack() as stack:

        def start(**overrides: Any) -> Sim:
            clock = ManualClock(START)
            app = create_app(make_config(**overrides), clock=clock)
            url = stack.enter_context(serve_in_thread(app))
            return Sim(url, app.state.sandbox, clock, stack)

        yield start


@pytest.fixture(scope="session")
def _shared_sim() -> Iterator[Sim]:
    """One default sandbox for the whole session (starting and stopping one per test costs ~0.2 s)."""
    with contextlib.ExitStack() as stack:
        clock = ManualClock(START)
        app = create_app(make_config(), clock=clock)
        url = stack.enter_context(serve_in_thread(app))
        yield Sim(url, app.state.sandbox, clock, stack)


@pytest.fixture
def sim(_shared_sim: Sim) -> Iterator[Sim]:
    """The default sandbox, reset and with its clock back at START; clients close after the test."""
    _shared_sim.state.reset()
    _shared_sim.clock.set(START)
    with contextlib.ExitStack() as stack:
        yield Sim(_shared_sim.url, _shared_sim.state, _shared_sim.clock, stack)
