"""Process versions stored before decisions were read here keep SpiffWorkflow's form of
their baked table (``decision_table``): it must still decide as it did when deployed."""

from __future__ import annotations

from typing import Any

from lxml import etree
from SpiffWorkflow.dmn.parser.BpmnDmnParser import BpmnDmnParser
from SpiffWorkflow.dmn.serializer.task_spec import BaseBusinessRuleTaskConverter

from engine.execution import decision_tables, evaluate_expression


class _Converter(BaseBusinessRuleTaskConverter):  # type: ignore[misc]
    def __init__(self) -> None:  # only its table-to-dict methods are used
        pass


def _spiff_dict(content: bytes, decision_id: str) -> dict[str, Any]:
    """The table as SpiffWorkflow's serializer stored it in a process version's spec."""
    parser = BpmnDmnParser()
    parser.add_dmn_xml(etree.fromstring(content), filename="old.dmn")
    table = parser.get_engine(decision_id, None).decision_table
    stored: dict[str, Any] = BaseBusinessRuleTaskConverter.decision_table_to_dict(
        _Converter(), table
    )
    return stored


def _decide(graph: decision_tables.Graph, **data: Any) -> decision_tables.Result:
    return decision_tables.evaluate(
        graph, lambda e, names: evaluate_expression(e, {**data, **names})
    )


def test_a_table_stored_in_spiffs_form_decides_as_it_was_deployed() -> None:
    # the shipped quotation table's first rules as they were before FEEL was read here:
    # Python-style outputs (True), and its cells
    content = (
        b'<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" '
        b'namespace="n"><decision id="quotation_approval" name="q">'
        b'<decisionTable id="t" hitPolicy="FIRST">'
        b'<input id="i1"><inputExpression id="e1"><text>quote_amount</text></inputExpression>'
        b'</input><input id="i2"><inputExpression id="e2"><text>customer_grade</text>'
        b'</inputExpression></input><output id="o1" name="approval_required"/>'
        b'<output id="o2" name="approval_reason"/>'
        b'<rule id="r1"><inputEntry id="a1"><text>&gt;= 200000</text></inputEntry>'
        b'<inputEntry id="a2"><text>-</text></inputEntry>'
        b'<outputEntry id="a3"><text>True</text></outputEntry>'
        b'<outputEntry id="a4"><text>"amount of 200,000 or more"</text></outputEntry></rule>'
        b'<rule id="r2"><inputEntry id="b1"><text>-</text></inputEntry>'
        b'<inputEntry id="b2"><text>"A", "B"</text></inputEntry>'
        b'<outputEntry id="b3"><text>False</text></outputEntry>'
        b'<outputEntry id="b4"><text>"good customer"</text></outputEntry></rule>'
        b"</decisionTable></decision></definitions>"
    )
    graph = decision_tables.from_spiff(_spiff_dict(content, "quotation_approval"))
    assert _decide(graph, quote_amount=250_000, customer_grade="D") == [
        {"approval_required": True, "approval_reason": "amount of 200,000 or more"}
    ]
    # Spiff compared the cell's value, a tuple, with the input: no match, as before
    assert _decide(graph, quote_amount=1_000, customer_grade="A") == []
    assert _decide(graph, quote_amount=1_000, customer_grade=("A", "B")) == [
        {"approval_required": False, "approval_reason": "good customer"}
    ]


def test_spiffs_unique_kept_its_first_match_and_its_cells_their_python_reading() -> None:
    content = (
        b'<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" '
        b'namespace="n"><decision id="old" name="old"><decisionTable id="t">'
        b'<input id="i"><inputExpression id="ie"><text>v</text></inputExpression></input>'
        b'<output id="o" name="out"/>'
        b'<rule id="r1"><inputEntry id="a"><text>1 &lt; ? &lt; 5</text></inputEntry>'
        b'<outputEntry id="b"><text>"low"</text></outputEntry></rule>'
        b'<rule id="r2"><inputEntry id="c"><text>in [3, 9]</text></inputEntry>'
        b'<outputEntry id="d2"><text>"listed"</text></outputEntry></rule>'
        b"</decisionTable></decision></definitions>"
    )
    graph = decision_tables.from_spiff(_spiff_dict(content, "old"))
    assert graph.decisions[graph.decision].table is not None
    assert graph.decisions[graph.decision].table.hit_policy == "FIRST"  # Spiff's UNIQUE: the first
    assert _decide(graph, v=3) == [{"out": "low"}]
    assert _decide(graph, v=9) == [{"out": "listed"}]
    assert _decide(graph, v=7) == []


def test_a_legacy_table_reads_as_spiffworkflow_did() -> None:
    """Deployed before (decision.legacy): an output named by its label, an empty output
    cell as "", a cell in a file that says JUEL, UNIQUE as FIRST."""
    from engine.modeling import dmn

    content = (
        b'<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" '
        b'namespace="n" expressionLanguage="juel"><decision id="old" name="old">'
        b'<decisionTable id="t"><input id="i"><inputExpression id="ie"><text>v</text>'
        b'</inputExpression></input><output id="o" label="note"/>'
        b'<rule id="r1"><inputEntry id="a"><text>len(?) &gt; 2</text></inputEntry>'
        b"<outputEntry id='b'><text></text></outputEntry></rule>"
        b'<rule id="r2"><inputEntry id="c"><text>-</text></inputEntry>'
        b"<outputEntry id='d2'><text>\"other\"</text></outputEntry></rule>"
        b"</decisionTable></decision></definitions>"
    )
    found, problems = dmn.read(etree.fromstring(content), legacy=True)
    assert problems == []
    graph = dmn.graph(found, "old")
    assert graph is not None
    assert _decide(graph, v="abc") == [{"note": ""}]  # both match: the first, as then
    assert _decide(graph, v="ab") == [{"note": "other"}]
    _, refused = dmn.read(etree.fromstring(content))
    assert refused != []  # deployed now, the same file must say what it means
