"""Magic recipient numbers: the last four digits of a number choose what the sandbox does with it.

Outcomes (Retarus REST v1 and HTTP Simple; reached when the recipient would otherwise be DONE):

    =======  ======================  =====================================================
    ends in  processStatus / status  meaning
    =======  ======================  =====================================================
    0001     DONE INVALID_DST        invalid number
    0002     DONE FAILED_FIN         the delivery notification says it failed
    0003     DONE BLOCKED            block-listed number
    0004     RUNNING (forever)       never final: sent, no delivery notification ever
    0005     DONE CON_ERR            all retry attempts to the carrier failed
    0006     DONE NOT_ACC_FIN        delivery to the carrier was not possible
    0007     CANCELED NOT_ACC_REC    cancelled after the first delivery attempt
    other    DONE SUC_FIN / SUC_ACC  success (SUC_FIN when statusRequested, else SUC_ACC)
    =======  ======================  =====================================================

Send faults (every API; checked on the send call before anything is stored):

    =======  =========================================================================
    ends in  answer
    =======  =========================================================================
    0500     HTTP 500, the job is NOT created
    0429     HTTP 429 with `Retry-After: 1`, the job is NOT created
    =======  =========================================================================

A Retarus `dst` that is not a number at all (after dropping spaces, dashes and a leading `+`)
ends as DONE INVALID_DST too. Sendmode has no status API: its recipients are recorded as accepted
(or suppressed when opted out) whatever their number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from models.enums import ProcessStatus


@dataclass(frozen=True)
class Scenario:
    """The final state a recipient reaches instead of success (`final=False`: it never gets there)."""

    process_status: ProcessStatus
    status: str
    reason: str
    final: bool = True


#: Success, with and without a delivery notification.
SUCCESS_WITH_NOTIFICATION = Scenario(
    ProcessStatus.DONE,
    "SUC_FIN",
    "message_state:DELIVERED [00000002] (Final) (Message is delivered to destination.)",
)
SUCCESS_WITHOUT_NOTIFICATION = Scenario(
    ProcessStatus.DONE, "SUC_ACC", "message_state:ACCEPTED (Message accepted by the carrier.)"
)
#: Validity ran out before the recipient was DONE.
TIMEOUT = Scenario(ProcessStatus.DONE, "TIMEOUT", "Sent, but validity period exceeded")
TIMEOUT_NOT_SENT = Scenario(ProcessStatus.DONE, "TIMEOUT", "Validity period exceeded before sending")

INVALID_DST = Scenario(ProcessStatus.DONE, "INVALID_DST", "Invalid destination number")

OUTCOMES: dict[str, Scenario] = {
    "0001": INVALID_DST,
    "0002": Scenario(
        ProcessStatus.DONE, "FAILED_FIN", "message_state:UNDELIVERABLE (Final) (Delivery failed.)"
    ),
    "0003": Scenario(ProcessStatus.DONE, "BLOCKED", "Number is block-listed"),
    "0004": Scenario(ProcessStatus.RUNNING, "", "Sent, no delivery notification received yet", final=False),
    "0005": Scenario(ProcessStatus.DONE, "CON_ERR", "All retry attempts unsuccessful"),
    "0006": Scenario(ProcessStatus.DONE, "NOT_ACC_FIN", "Delivery to the carrier was not possible"),
    "0007": Scenario(ProcessStatus.CANCELED, "NOT_ACC_REC", "Cancelled after the initial delivery attempt"),
}

#: Last four digits -> HTTP status answered to the send call, without creating anything.
SEND_FAULTS: dict[str, int] = {"0500": 500, "0429": 429}
#: Retry-After (seconds) sent with the magic 429.
MAGIC_RETRY_AFTER_S = 1


def digits_of(number: str) -> str | None:
    """The digits of a phone number, or None when it is not one (letters, nothing left, ...)."""
    stripped = number.strip().replace(" ", "").replace("-", "")
    if stripped.startswith("+"):
        stripped = stripped[1:]
    return stripped if stripped.isdigit() and stripped.isascii() else None


def outcome_for(dst: str, *, status_requested: bool) -> Scenario:
    """The state a recipient with this number ends in when nothing (validity) intervenes."""
    digits = digits_of(dst)
    if digits is None:
        return INVALID_DST
    magic = OUTCOMES.get(digits[-4:])
    if magic is not None:
        return magic
    return SUCCESS_WITH_NOTIFICATION if status_requested else SUCCESS_WITHOUT_NOTIFICATION


def send_fault_for(numbers: Iterable[str]) -> int | None:
    """The HTTP status a send naming any of these numbers must answer with, or None."""
    for number in numbers:
        digits = digits_of(number)
        if digits is not None and digits[-4:] in SEND_FAULTS:
            return SEND_FAULTS[digits[-4:]]
    return None
