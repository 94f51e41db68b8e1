"""Conformance: an external fuzzer (schemathesis) drives the sandbox over real HTTP from the reconstructed
OpenAPI files in `../shared/providers/specs/` and checks, for every operation, that the sandbox never
answers 5xx, answers only documented status codes and content types, and that every answer matches its
schema. Bounded: MAX_EXAMPLES generated cases per operation (about 20 s in all).

Where the fuzzer and the sandbox disagreed, the contract decided and the sandbox was fixed. Excluded:
- negative-data checks for the Sendmode operations: Sendmode refuses bad input in the body with HTTP 200
  and a non-zero statusCode (PROVIDERS.md 3.1, 3.4), so "a 4xx for invalid data" does not apply there;
- `positive_data_acceptance` ("a schema-valid request gets 2xx") for every operation: the specs cannot
  express rules the contract states in prose and that the sandbox enforces with a documented 400: the
  blackoutPeriods interval syntax (PROVIDERS.md 1.4: "Invalid syntax gives 400"), 30 days between fromTs
  and toTs (1.3), the `jobId` pattern, which JSON Schema reads unanchored but the sandbox matches whole,
  and an empty `text`/`dst`. Every such answer is still checked for its status code and schema.
- the authentication checks (`ignored_auth`, `missing_required_header`) for Retarus `GET /version`, which
  the contract lets a simulator answer without credentials (PROVIDERS.md 1.7), and for Sendmode, which
  refuses a missing or wrong key in the body (INVALID_ACCESS_KEY / 14) with HTTP 200 (PROVIDERS.md 3.1);
  tests/sandbox checks both refusals.
HTTP Simple has no OpenAPI file (PROVIDERS.md 0) and is covered by tests/sandbox/test_httpsimple.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi import checks as openapi_checks

from sandbox.app import create_app
from sandbox.config import DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME, SandboxConfig
from sandbox.server import serve_in_thread

SPECS = Path(__file__).resolve().parents[3] / "shared" / "providers" / "specs"
RETARUS_SPEC = SPECS / "retarus-sms4a.openapi.yaml"
SENDMODE_SPEC = SPECS / "sendmode-v2.openapi.yaml"
#: Generated cases per operation.
MAX_EXAMPLES = 30

pytestmark = [
    pytest.mark.contract,
    pytest.mark.skipif(not SPECS.is_dir(), reason=f"the shared specs are not at {SPECS}"),
]


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    # No rate limit and plenty of credit: the fuzzer is checking answers, not limits.
    config = SandboxConfig(limit_calls=1_000_000, initial_credits=1e9)
    with serve_in_thread(create_app(config)) as url:
        yield url


def _load(path: Path) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_path(path) if path.is_file() else schemathesis.openapi.from_dict({})


BASIC = "Basic " + base64.b64encode(f"{DEFAULT_USERNAME}:{DEFAULT_PASSWORD}".encode()).decode()
retarus_schema = _load(RETARUS_SPEC)
sendmode_schema = _load(SENDMODE_SPEC)
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


@retarus_schema.parametrize()
@FUZZ
def test_retarus_rest_v1_conforms(case: schemathesis.Case[Any], sandbox_url: str) -> None:
    excluded: list[CheckFunction] = [openapi_checks.positive_data_acceptance]
    if case.operation.path == "/version":
        excluded += [
            openapi_checks.ignored_auth,
            openapi_checks.missing_required_header,
            openapi_checks.negative_data_rejection,  # "invalid" here means only: no Authorization
        ]
    case.call_and_validate(
        base_url=f"{sandbox_url}/rest/v1", headers={"Authorization": BASIC}, excluded_checks=excluded
    )


@sendmode_schema.parametrize()
@FUZZ
def test_sendmode_v2_conforms(case: schemathesis.Case[Any], sandbox_url: str) -> None:
    case.call_and_validate(
        base_url=f"{sandbox_url}/v2",
        headers={"Authorization": DEFAULT_API_KEY},
        excluded_checks=[
            openapi_checks.negative_data_rejection,
            openapi_checks.positive_data_acceptance,
            openapi_checks.ignored_auth,
            openapi_checks.missing_required_header,
        ],
    )
