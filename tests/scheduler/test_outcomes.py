"""Writing outcomes: only non-final recipients move; duplicate and out-of-order reports are ignored."""

from __future__ import annotations

from datetime import UTC, datetime

from scheduler.outcomes import RecipientStatus, Report, apply_reports

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def recipient(id_: str, dst: str) -> RecipientStatus:
    return RecipientStatus(id_, "j", dst, None, None, None, None, None, None, "pending", False, None)


def rows():
    return [recipient("r1", "+4917600000001"), recipient("r2", "+4917600000002")]


def test_reports_are_matched_by_customer_ref_and_classified():
    a, b = rows()
    changed = apply_reports(
        [a, b],
        [
            Report("r1", "+4917600000001", "DONE", "SUC_FIN", "delivered", "S.1", NOW, NOW),
            Report("r2", "+4917600000002", "RUNNING", None, None, "S.2", NOW, None),
        ],
        NOW,
    )
    assert len(changed) == 2
    assert (a.outcome, a.final, a.sms_id) == ("delivered", True, "S.1")
    assert (b.outcome, b.final, b.process_status) == ("sent", False, "RUNNING")


def test_a_final_recipient_is_never_moved_by_a_late_or_duplicate_report():
    a, _ = rows()
    apply_reports([a], [Report("r1", None, "DONE", "SUC_FIN")], NOW)
    changed = apply_reports(
        [a], [Report("r1", None, "RUNNING", None), Report("r1", None, "DONE", "FAILED_FIN")], NOW
    )
    assert changed == []
    assert (a.outcome, a.status, a.final) == ("delivered", "SUC_FIN", True)


def test_an_open_recipient_moves_forward_and_unknown_refs_are_ignored():
    a, b = rows()
    apply_reports([a, b], [Report("r1", None, "OPEN", None)], NOW)
    assert (a.outcome, a.final) == ("pending", False)
    apply_reports(
        [a, b],
        [Report("zz", "+4917699999999", "DONE", "SUC_ACC"), Report("r1", None, "DONE", "BLOCKED")],
        NOW,
    )
    assert (a.outcome, a.final) == ("undeliverable", True)
    assert (b.outcome, b.final) == ("pending", False)


def test_report_without_customer_ref_falls_back_to_an_unambiguous_number():
    a, b = rows()
    apply_reports([a, b], [Report(None, "+4917600000002", "DONE", "SUC_ACC")], NOW)
    assert (b.outcome, b.final) == ("accepted", True)
    assert a.final is False
