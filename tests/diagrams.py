"""Small BPMN diagrams written in tests: the XML around a process body, and its parts."""

from __future__ import annotations

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions '
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d_{pid}" '
    'targetNamespace="http://bpmn.io/schema/bpmn"><bpmn:process id="{pid}" isExecutable="true">'
)


def diagram(pid: str, body: str, outside: str = "") -> tuple[str, bytes]:
    xml = HEAD.format(pid=pid) + body + "</bpmn:process>" + outside + "</bpmn:definitions>"
    return f"{pid}.bpmn", xml.encode()


def user(element: str, inside: str = "") -> str:
    routed = f'id="{element}" camunda:candidateGroups="finance"'
    return f"<bpmn:userTask {routed}>{inside}</bpmn:userTask>"


def seq(source: str, target: str, condition: str | None = None) -> str:
    cond = (
        f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}'
        "</bpmn:conditionExpression>"
        if condition
        else ""
    )
    return (
        f'<bpmn:sequenceFlow id="{source}_to_{target}" sourceRef="{source}" '
        f'targetRef="{target}">{cond}</bpmn:sequenceFlow>'
    )


def timer(kind: str, value: str) -> str:
    return (
        f'<bpmn:timerEventDefinition><bpmn:{kind} xsi:type="bpmn:tFormalExpression">{value}'
        f"</bpmn:{kind}></bpmn:timerEventDefinition>"
    )


def message(name: str, takes: str = "", *, earlier: bool = False) -> str:
    """A message event definition; ``takes``: the variables the catch declares it takes;
    ``earlier``: it takes messages kept since before its instance started (the extension
    elements come first in the event, as BPMN's schema wants)."""
    properties = (
        f'<camunda:property name="messageVariables" value="{takes}" />' if takes else ""
    ) + ('<camunda:property name="acceptsEarlierMessages" value="true" />' if earlier else "")
    declared = (
        "<bpmn:extensionElements><camunda:properties>"
        f"{properties}</camunda:properties></bpmn:extensionElements>"
        if properties
        else ""
    )
    return f'{declared}<bpmn:messageEventDefinition messageRef="m_{name}" />'


def messages(*names: str) -> str:
    return "".join(f'<bpmn:message id="m_{n}" name="{n}" />' for n in names)
