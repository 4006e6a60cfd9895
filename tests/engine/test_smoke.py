from tests.engine.conftest import Scenario


def test_document_review_round_trip(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start("document_review", actor="clerk", business_key="SO-1")
    assert scenario.open_elements(iid) == ["prepare_documents"]
    scenario.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-1")
    scenario.complete(iid, "review_documents", by="checker", documents_ok=True)
    assert flow.instance(iid).status == "completed"
    print(scenario.kinds(iid))
