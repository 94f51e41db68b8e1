"""The retention sweep: every `SMSQ_RETENTION_INTERVAL_S`, delete final jobs older than `SMSQ_RETENTION_DAYS`.

The cutoff is computed on the database's clock (`rt.clock.now()`), never this host's. One run deletes at
most `SMSQ_RETENTION_MAX_BATCHES` batches of `SMSQ_RETENTION_BATCH` jobs, each batch its own transaction
(worker/retention.py), so a large first purge after enabling retention is spread over several runs and
never holds a long transaction or starves the send path. `SMSQ_RETENTION_DAYS=0` keeps everything.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from worker.retention import PurgeReport, purge
from worker.runtime import Runtime

log = logging.getLogger("smsq.scheduler.retention")


def retention_cutoff(rt: Runtime, now: datetime | None = None) -> datetime | None:
    """Final jobs that finished before this time are deleted; None when retention is off."""
    days = rt.settings.retention_days
    if days <= 0:
        return None
    return (now or rt.clock.now()) - timedelta(days=days)


def retention_sweep(rt: Runtime) -> PurgeReport:
    """One bounded run of the purge (see the module doc); returns what it deleted."""
    cutoff = retention_cutoff(rt)
    if cutoff is None:
        return PurgeReport()
    report = purge(
        rt.sessions,
        cutoff,
        batch=rt.settings.retention_batch,
        max_batches=rt.settings.retention_max_batches,
    )
    if report.jobs or report.submissions:
        log.info(
            "retention: deleted %d jobs, %d recipients, %d submissions, %d callback events in %d batches%s",
            report.jobs,
            report.recipients,
            report.submissions,
            report.callbacks,
            report.batches,
            " (more left for the next run)" if report.more else "",
        )
    return report
