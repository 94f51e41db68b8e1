"""Magic recipient numbers: the last four digits of a number choose what the sandbox does with it.

Outcomes (Retarus REST v1 and HTTP Simple). Together with success and the validity rules (progress.py)
they reach every row of the status table (PROVIDERS.md 1.6). "dn" = a delivery notification was asked
for (REST `statusRequested=true`, HTTP Simple `dn=true`); rows the table marks True happen only with it,
SUC_ACC only without it, and an SMS that was never sent never ends in TIMEOUT.

    =======  ===========================  ===================  ============================================
    ends in  processStatus / status       needs                path
    =======  ===========================  ===================  ============================================
    other    DONE SUC_FIN                 dn                   OPEN -> RUNNING -> DONE
    other    DONE SUC_ACC                 no dn                OPEN -> DONE (at the send)
    0001     DONE INVALID_DST             -                    OPEN -> DONE at the send attempt
    0002     DONE FAILED_FIN              dn (else SUC_ACC)    OPEN -> RUNNING -> DONE
    0003     DONE BLOCKED                 -                    OPEN -> DONE at the send attempt
    0004     RUNNING (status empty)       dn (else SUC_ACC)    OPEN -> RUNNING forever (never final)
    0005     DONE CON_ERR                 -                    OPEN -> DONE at the send attempt
    0006     DONE NOT_ACC_FIN             -                    OPEN -> DONE at the send attempt
    0007     CANCELED NOT_ACC_REC         -                    OPEN -> CANCELED at the send attempt
    0008     DONE SEND_ERR                -                    OPEN -> DONE at the send attempt
    0014     DONE STATUS_ERR              dn (else SUC_ACC)    OPEN -> RUNNING -> DONE
    0015     CANCELED (status empty)      -                    OPEN -> CANCELED before the first attempt
    0016     KILL (status empty)          dn (else SUC_ACC)    OPEN -> RUNNING -> KILL
    0017     OPEN CON_ERR (retry state)   -                    OPEN -> OPEN CON_ERR (retrying) until the
                                                               validity ends -> DONE CON_ERR
    =======  ===========================  ===================  ============================================

Validity (progress.py): with dn, validity ending while RUNNING gives DONE TIMEOUT ("sent, but validity
period exceeded"); validity ending before the send attempt gives CANCELED with an empty status (never
TIMEOUT, which means "sent"). OPEN with an empty status is every recipient before its send attempt.

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
    """The state a recipient ends in (`final=False`: it never gets there and stays in it).

    `notification`: True for rows that need a delivery notification (dn), False for the row that
    exists only without one, None where the table says "irrelevant". `sent`: the SMS left Retarus
    (it has a sentTs and, with dn, passes through RUNNING); otherwise the state is reached at the
    send attempt. `retry_status`: the status an OPEN recipient shows while retrying before the end.
    """

    process_status: ProcessStatus
    status: str
    reason: str
    final: bool = True
    notification: bool | None = None
    sent: bool = False
    retry_status: str | None = None


#: Success, with and without a delivery notification.
SUCCESS_WITH_NOTIFICATION = Scenario(
    ProcessStatus.DONE,
    "SUC_FIN",
    "message_state:DELIVERED [00000002] (Final) (Message is delivered to destination.)",
    notification=True,
    sent=True,
)
SUCCESS_WITHOUT_NOTIFICATION = Scenario(
    ProcessStatus.DONE,
    "SUC_ACC",
    "message_state:ACCEPTED (Message accepted by the carrier.)",
    notification=False,
    sent=True,
)
#: Validity ran out while the SMS was RUNNING (only with a delivery notification).
TIMEOUT = Scenario(
    ProcessStatus.DONE, "TIMEOUT", "Sent, but validity period exceeded", notification=True, sent=True
)
#: ASSUMPTION (PROVIDERS.md 1.6 says TIMEOUT means "sent"): validity ran out before the first attempt.
EXPIRED_BEFORE_SENDING = Scenario(
    ProcessStatus.CANCELED, "", "Validity period exceeded before the initial delivery attempt"
)

INVALID_DST = Scenario(ProcessStatus.DONE, "INVALID_DST", "Invalid destination number")
CON_ERR = Scenario(ProcessStatus.DONE, "CON_ERR", "All retry attempts unsuccessful")
#: The status an OPEN recipient in retry state shows (the table allows any).
RETRY_STATUS = "CON_ERR"

OUTCOMES: dict[str, Scenario] = {
    "0001": INVALID_DST,
    "0002": Scenario(
        ProcessStatus.DONE,
        "FAILED_FIN",
        "message_state:UNDELIVERABLE (Final) (Delivery failed.)",
        notification=True,
        sent=True,
    ),
    "0003": Scenario(ProcessStatus.DONE, "BLOCKED", "Number is block-listed"),
    "0004": Scenario(
        ProcessStatus.RUNNING,
        "",
        "Sent, no delivery notification received yet",
        final=False,
        notification=True,
        sent=True,
    ),
    "0005": CON_ERR,
    "0006": Scenario(ProcessStatus.DONE, "NOT_ACC_FIN", "Delivery to the carrier was not possible"),
    "0007": Scenario(ProcessStatus.CANCELED, "NOT_ACC_REC", "Cancelled after the initial delivery attempt"),
    "0008": Scenario(ProcessStatus.DONE, "SEND_ERR", "Internal error while sending"),
    "0014": Scenario(
        ProcessStatus.DONE,
        "STATUS_ERR",
        "Internal error while querying the delivery notification",
        notification=True,
        sent=True,
    ),
    "0015": Scenario(ProcessStatus.CANCELED, "", "Cancelled before the initial delivery attempt"),
    "0016": Scenario(
        ProcessStatus.KILL, "", "Sent, then cancelled; no delivery notification", notification=True, sent=True
    ),
    "0017": Scenario(
        ProcessStatus.DONE,
        "CON_ERR",
        "All retry attempts unsuccessful until the validity ended",
        retry_status=RETRY_STATUS,
    ),
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
    """The state a recipient with this number ends in when nothing (validity) intervenes.

    A row that needs a delivery notification is reached only when one was requested; without it the
    SMS that was sent ends as DONE SUC_ACC (nobody reports on it after the carrier took it).
    """
    digits = digits_of(dst)
    if digits is None:
        return INVALID_DST
    magic = OUTCOMES.get(digits[-4:])
    if magic is not None and (magic.notification is not True or status_requested):
        return magic
    return SUCCESS_WITH_NOTIFICATION if status_requested else SUCCESS_WITHOUT_NOTIFICATION


def send_fault_for(numbers: Iterable[str]) -> int | None:
    """The HTTP status a send naming any of these numbers must answer with, or None."""
    for number in numbers:
        digits = digits_of(number)
        if digits is not None and digits[-4:] in SEND_FAULTS:
            return SEND_FAULTS[digits[-4:]]
    return None
