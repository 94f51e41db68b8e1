"""The conformance run: schemathesis against the sandbox, marked `contract` (skip it with -m "not contract")."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "contract: the OpenAPI fuzzer against the sandbox (CI runs it)")
