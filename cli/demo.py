"""``tradeflow demo``: the shipped processes deployed, one person per role, and orders
at different stages, so that a new installation shows an inbox for everybody.

The steps run through the engine as the people would run them, with the submissions
below (which the content tests use too, so they always fit the shipped forms)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.people import Flags, users
from engine.storage import TaskState
from engine.tradeflow import Tradeflow

ROOT = Path(__file__).resolve().parent.parent

# one person per role queue of the department, plus who else uses the system
PEOPLE: dict[str, tuple[list[str], Flags]] = {
    "wang.fang": (["market_development"], Flags()),
    "chen.jie": (["manager"], Flags(auditor=True)),
    "liu.yang": (["order_execution"], Flags()),
    "zhao.lei": (["production"], Flags()),
    "sun.li": (["quality"], Flags()),
    "li.wei": (["documents_logistics"], Flags()),
    "zhou.min": (["risk_compliance"], Flags()),
    "wu.hua": (["finance"], Flags()),
    "process.owner": ([], Flags(process_owner=True)),
    "admin": ([], Flags(admin=True, process_owner=True, auditor=True)),
    "bank-feed": ([], Flags(integration=True)),
}

# a submission for each user task of the shipped processes, by element id
SAMPLES: dict[str, dict[str, Any]] = {
    "screen_lead": {
        "company_name": "Hamburg Tools GmbH",
        "country": "DE",
        "contact_email": "einkauf@hamburg-tools.example",
        "annual_volume": 1_500_000,
        "margin_percent": 18.0,
        "potential": "high",
        "credit_score": 720,
        "qualified": True,
    },
    "assign_key_account": {"account_manager": "Wang Fang", "service_level": "premium"},
    "create_customer_record": {
        "customer_id": "C-1001",
        "contact_name": "Anna Vogel",
        "preferred_currency": "EUR",
    },
    "follow_up_customer": {
        "follow_up_channel": "visit",
        "follow_up_notes": "Met at the Canton Fair",
        "keep_following": True,
    },
    "prepare_quotation": {
        "customer_name": "Hamburg Tools GmbH",
        "customer_grade": "B",
        "product": "Cordless drill CD-18",
        "quantity": 2000,
        "unit_price": 24.5,
        "currency": "USD",
        "margin_percent": 14.0,
        "incoterms": "FOB",
        "payment_terms": "TT_30_70",
        "ship_date": "2027-01-15",
        "validity_days": 30,
    },
    "approve_quotation": {"quotation_approved": True},
    "chase_quotation": {"chase_action": "reminded"},
    "send_quotation": {"quotation_number": "Q-2026-0117", "sent_on": "2026-11-27"},
    "draft_contract": {"contract_number": "SC-2026-0117", "delivery_date": "2027-01-20"},
    "review_contract": {
        "credit_limit_ok": True,
        "payment_terms_ok": True,
        "sanctions_clear": True,
        "export_control_clear": True,
        "contract_approved": True,
    },
    "sign_contract": {"signed_on": "2026-11-30", "customer_po_number": "HT-4471"},
    "coordinate_production": {
        "production_order_number": "PO-2026-0117",
        "planned_completion": "2027-01-05",
    },
    "produce_order": {"produced_quantity": 2000, "finished_on": "2027-01-04"},
    "inspect_goods": {"inspection_result": "pass", "inspection_report_number": "QC-881"},
    "rework_goods": {"rework_done": "Deburred the housings", "reworked_quantity": 150},
    "book_shipment": {
        "carrier": "COSCO",
        "booking_number": "COS6612345",
        "port_of_loading": "Ningbo",
        "port_of_discharge": "Hamburg",
        "etd": "2027-01-12",
    },
    "prepare_documents": {"invoice_number": "INV-2026-0117", "packing_list_ready": True},
    "review_documents": {"documents_ok": True},
    "declare_customs": {"declaration_number": "310120270000123456", "customs_cleared": True},
    "issue_invoice": {"invoice_amount": 49_000.0, "currency": "USD"},
    "send_payment_reminder": {"reminder_channel": "email"},
    "chase_payment": {"outcome": "recovered", "collection_note": "Balance paid"},
    "write_off": {"fx_rate": 7.12, "settled_amount_cny": 348_880.0},
    "satisfaction_survey": {"satisfaction": "4", "complaint": False},
    "investigate_complaint": {"root_cause": "packing", "findings": "Crushed cartons"},
    "resolve_complaint": {"resolution": "refund", "compensation_amount": 800.0},
    "approve_compensation": {"compensation_approved": True},
}

# who does each step in the demo: the person holding the step's role
DOER = {
    "screen_lead": "wang.fang",
    "create_customer_record": "wang.fang",
    "prepare_quotation": "wang.fang",
    "send_quotation": "wang.fang",
    "approve_quotation": "chen.jie",
    "draft_contract": "liu.yang",
    "review_contract": "zhou.min",
    "sign_contract": "liu.yang",
    "coordinate_production": "liu.yang",
    "produce_order": "zhao.lei",
    "inspect_goods": "sun.li",
    "rework_goods": "zhao.lei",
    "book_shipment": "li.wei",
    "prepare_documents": "li.wei",
    "review_documents": "zhou.min",
    "declare_customs": "li.wei",
    "issue_invoice": "wu.hua",
    "satisfaction_survey": "liu.yang",
}


@dataclass(frozen=True)
class Order:
    """A demo case: where it starts, how far it goes, what the inbox then shows."""

    process: str
    business_key: str
    steps: list[tuple[str, dict[str, Any]]]  # element, changes to its sample submission
    message: str | None = None  # the customer's acceptance, sent after the quotation


ORDERS = [
    Order("customer_development", "LEAD-2026-031", [("screen_lead", {})]),
    Order("inquiry_to_collection", "INQ-2026-118", []),
    Order(
        "inquiry_to_collection",
        "INQ-2026-119",
        [("prepare_quotation", {"quantity": 12_000, "customer_name": "Lyon Outillage SA"})],
    ),
    Order(
        "inquiry_to_collection",
        "SO-2026-0117",
        [("prepare_quotation", {}), ("send_quotation", {}), ("draft_contract", {})],
        message="quotation_accepted",
    ),
    Order(
        "inquiry_to_collection",
        "SO-2026-0109",
        [
            ("prepare_quotation", {"customer_grade": "A"}),
            ("send_quotation", {"quotation_number": "Q-2026-0109"}),
            ("draft_contract", {"contract_number": "SC-2026-0109"}),
            ("review_contract", {}),
            ("sign_contract", {}),
            ("coordinate_production", {}),
            ("produce_order", {}),
            ("inspect_goods", {"inspection_result": "fail", "defects": "Burrs on housings"}),
        ],
        message="quotation_accepted",
    ),
    Order(
        "order_fulfilment",
        "SO-2026-0098",
        [
            ("coordinate_production", {}),
            ("produce_order", {}),
            ("inspect_goods", {}),
            ("book_shipment", {}),
            ("prepare_documents", {}),
        ],
    ),
    Order("payment_collection", "SO-2026-0087", [("issue_invoice", {})]),
    Order("after_sales", "SO-2026-0071", [("satisfaction_survey", {"complaint": True})]),
]


def describe(name: str) -> str:
    """A demo user's roles, or what else they may do."""
    roles, flags = PEOPLE[name]
    powers = [
        label
        for label, held in (
            ("admin", flags.admin),
            ("process owner", flags.process_owner),
            ("auditor", flags.auditor),
            ("integration", flags.integration),
        )
        if held
    ]
    return ", ".join(roles + powers)


PASSWORD = "tradeflow-demo"  # every demo person's, for the web pages (printed by the demo)


def people(flow: Tradeflow) -> dict[str, str]:
    """Create the demo users, who sign in to the pages in Chinese; name -> API token."""
    tokens = {}
    hashed = users.hash_password(PASSWORD)  # the same password: hashed once
    for name, (roles, flags) in PEOPLE.items():
        _, tokens[name] = flow.add_user(name, roles, flags)
        if not flags.integration:
            with flow.db.transaction() as session:
                users.set_password(session, name, hashed, flow.clock.now(), locale="zh")
    return tokens


def shipped_files() -> list[tuple[str, bytes]]:
    paths = sorted((ROOT / "bpmn").glob("*.bpmn")) + sorted((ROOT / "bpmn").glob("*.dmn"))
    paths += sorted((ROOT / "forms").glob("*.form"))
    return [(p.name, p.read_bytes()) for p in paths]


def run_order(flow: Tradeflow, order: Order, say: Callable[[str], None]) -> int:
    """Start the order and take it through its steps; the instance id."""
    iid = flow.start(order.process, actor="wang.fang", business_key=order.business_key)
    for element, changes in order.steps:
        [task] = [
            t for t in flow.tasks_of(iid) if t.element_id == element and t.state == TaskState.OPEN
        ]
        flow.complete(task.id, actor=DOER[element], data={**SAMPLES[element], **changes})
        if element == "send_quotation" and order.message:
            flow.correlate(order.message, actor="bank-feed", business_key=order.business_key)
    waiting = sorted(
        f"{t.element_id} ({t.candidate_roles})"
        for t in flow.tasks_of(iid)
        if t.state == TaskState.OPEN
    )
    say(f"  {order.business_key:14s} {order.process:22s} {', '.join(waiting) or 'waiting'}")
    return iid
