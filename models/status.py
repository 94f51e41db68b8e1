"""The status table of PROVIDERS.md section 1.6, in exactly one place.

`classify(process_status, status)` turns the provider's raw pair into smsq's normalised
`Outcome` and says whether the recipient is final. Both Retarus APIs report this pair;
Sendmode has no status API, so its accepted recipients are final with `Outcome.ACCEPTED`.
"""

from __future__ import annotations

from typing import NamedTuple

from models.enums import Outcome, ProcessStatus


class Classified(NamedTuple):
    outcome: Outcome
    final: bool


#: DONE + status -> outcome. Every DONE is final.
_DONE: dict[str, Outcome] = {
    "SUC_ACC": Outcome.ACCEPTED,  # successful, no delivery notification requested
    "SUC_FIN": Outcome.DELIVERED,  # successful, delivery notification says delivered
    "INVALID_DST": Outcome.UNDELIVERABLE,
    "BLOCKED": Outcome.UNDELIVERABLE,
    "TIMEOUT": Outcome.EXPIRED,  # sent, validity exceeded before a delivery notification
    "CON_ERR": Outcome.FAILED,
    "FAILED_FIN": Outcome.FAILED,
    "NOT_ACC_FIN": Outcome.FAILED,
    "SEND_ERR": Outcome.UNKNOWN,  # internal error; "in most cases the SMS arrived anyway"
    "STATUS_ERR": Outcome.UNKNOWN,  # internal error while querying the delivery notification
}

#: Statuses that end a recipient's life at the provider.
FINAL_PROCESS_STATUSES = frozenset({ProcessStatus.DONE, ProcessStatus.CANCELED, ProcessStatus.KILL})

#: Outcomes that are final whatever produced them (used for local decisions too).
FINAL_OUTCOMES = frozenset(
    {
        Outcome.DELIVERED,
        Outcome.ACCEPTED,
        Outcome.UNDELIVERABLE,
        Outcome.FAILED,
        Outcome.EXPIRED,
        Outcome.CANCELED,
        Outcome.SUPPRESSED,
        Outcome.UNKNOWN,
    }
)


def classify(process_status: str | None, status: str | None) -> Classified:
    """Map a Retarus (processStatus, status) pair to (outcome, final)."""
    process = (process_status or "").strip().upper()
    code = (status or "").strip().upper()
    if process == ProcessStatus.OPEN:
        return Classified(Outcome.PENDING, False)
    if process == ProcessStatus.RUNNING:
        return Classified(Outcome.SENT, False)
    if process == ProcessStatus.DONE:
        return Classified(_DONE.get(code, Outcome.UNKNOWN), True)
    if process == ProcessStatus.CANCELED:
        return Classified(Outcome.CANCELED, True)
    if process == ProcessStatus.KILL:
        # Sent, then cancelled before any delivery notification: it left Retarus, fate unknown.
        return Classified(Outcome.SENT, True)
    # Anything unrecognised is treated as still in progress so we keep polling (bounded by validity + grace).
    return Classified(Outcome.PENDING, False)
