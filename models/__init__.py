"""smsq's data: request schemas, provider wire models, the status table, tables and clocks. No I/O here.

The names most code needs are re-exported (imported on first use, so `import models.tables` stays light):

    from models import SmsRequest, JobState, Outcome, classify
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    # requests
    "JobOptions",
    "Message",
    "SmsRequest",
    # states and spellings
    "Encoding",
    "InvalidCharacters",
    "JobState",
    "Outcome",
    "ProcessStatus",
    "ProviderKey",
    "Qos",
    # the status table
    "classify",
]

_HOMES = {
    "JobOptions": "models.request",
    "Message": "models.request",
    "SmsRequest": "models.request",
    "Encoding": "models.enums",
    "InvalidCharacters": "models.enums",
    "JobState": "models.enums",
    "Outcome": "models.enums",
    "ProcessStatus": "models.enums",
    "ProviderKey": "models.enums",
    "Qos": "models.enums",
    "classify": "models.status",
}

if TYPE_CHECKING:
    from models.enums import Encoding, InvalidCharacters, JobState, Outcome, ProcessStatus, ProviderKey, Qos
    from models.request import JobOptions, Message, SmsRequest
    from models.status import classify


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
