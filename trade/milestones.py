"""The milestones of the shipped diagrams (bpmn/) that the department's measures read
(``../shared/DOMAIN.md``, "Measures"; docs/measures.md): for each, the audit event that
marks it (a task completed, a timer fired, by element id) and the case-fact columns it
sets. A diagram version that drops one of these elements is deployed with a warning:
its instances' measures would go blank."""

from __future__ import annotations

from engine.reporting.facts import (
    COMPLETED,
    TIMER,
    Milestone,
    Milestones,
    actor,
    changed,
    flag,
    score,
    text,
)

MILESTONES: Milestones = {
    (COMPLETED, "prepare_quotation"): Milestone(
        "quoted_at", first={"owner": actor}, latest={"grade": text("customer_grade")}
    ),
    (COMPLETED, "send_quotation"): Milestone("quote_sent_at"),
    (COMPLETED, "draft_contract"): Milestone(latest={"promised_date": text("delivery_date")}),
    (COMPLETED, "sign_contract"): Milestone("signed_at"),
    (COMPLETED, "review_documents"): Milestone(
        "reviewed_at", first={"documents_first_pass": flag("documents_ok")}
    ),
    (COMPLETED, "declare_customs"): Milestone("shipped_at"),
    (COMPLETED, "issue_invoice"): Milestone("invoiced_at"),
    (TIMER, "payment_overdue"): Milestone("overdue_at"),
    (COMPLETED, "write_off"): Milestone("paid_at"),
    (COMPLETED, "chase_payment"): Milestone(latest={"collection_outcome": text("outcome")}),
    (COMPLETED, "satisfaction_survey"): Milestone(
        "surveyed_at", first={"satisfaction": score("satisfaction"), "complaint": flag("complaint")}
    ),
    (COMPLETED, "screen_lead"): Milestone(
        first={"owner": actor}, latest={"grade": changed("grade")}
    ),
    (COMPLETED, "create_customer_record"): Milestone("customer_recorded_at"),
}
