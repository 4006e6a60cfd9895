"""Deploying diagrams, decisions and forms; versions per process key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.audit import DEFINITIONS_STREAM, AuditTrail, EventKind
from engine.errors import DefinitionNotFound, DiagramInvalid, Problem
from engine.execution import Limits, StateSerializer
from engine.modeling import decision_versions, diagrams
from engine.modeling.events import messages_of
from engine.modeling.lint import Bundle, lint, read_files
from engine.reporting import facts
from engine.storage import (
    Definition,
    DefinitionTask,
    Deployment,
    Form,
    Resource,
    ResourceKind,
)
from engine.timers import start_timers


@dataclass(frozen=True)
class Deployed:
    key: str
    version: int
    definition_id: int
    created: bool  # False: identical content was already deployed


@dataclass
class DeploymentResult:
    deployment_id: int | None
    definitions: list[Deployed] = field(default_factory=list)
    forms: list[Deployed] = field(default_factory=list)
    decisions: list[Deployed] = field(default_factory=list)
    # deployed anyway, but worth a look: a version that drops an element a measure reads
    warnings: list[str] = field(default_factory=list)


def _sha(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def latest(session: Session, key: str) -> Definition | None:
    return session.scalars(
        select(Definition).where(Definition.key == key).order_by(Definition.version.desc()).limit(1)
    ).first()


def find(session: Session, key: str, version: int | None = None) -> Definition:
    if version is None:
        found = latest(session, key)
    else:
        found = session.scalars(
            select(Definition).where(Definition.key == key, Definition.version == version)
        ).first()
    if found is None:
        suffix = f" version {version}" if version is not None else ""
        raise DefinitionNotFound(f"no process definition '{key}'{suffix}", key=key)
    return found


def _stored_process_xml(session: Session, key: str) -> bytes | None:
    definition = latest(session, key)
    if definition is None:
        return None
    return session.get_one(Resource, definition.resource_id).content.encode()


def latest_forms(session: Session) -> list[Form]:
    """The latest version of every form, by key."""
    newest = select(Form.key, func.max(Form.version).label("version")).group_by(Form.key).subquery()
    return list(
        session.scalars(
            select(Form)
            .join(newest, (Form.key == newest.c.key) & (Form.version == newest.c.version))
            .order_by(Form.key)
        )
    )


def decision_files(session: Session) -> list[Resource]:
    """The latest deployed copy of every .dmn file, by file name."""
    newest = (
        select(Resource.name, func.max(Resource.id).label("id"))
        .where(Resource.kind == ResourceKind.DMN)
        .group_by(Resource.name)
        .subquery()
    )
    return list(
        session.scalars(
            select(Resource).join(newest, Resource.id == newest.c.id).order_by(Resource.name)
        )
    )


def deploy(
    session: Session,
    serializer: StateSerializer,
    files: list[tuple[str, bytes]],
    *,
    actor: str,
    now: datetime,
    limits: Limits,
) -> DeploymentResult:
    """Lint the files together and store new versions; raise DiagramInvalid on any problem.
    ``limits``: the runtime's, so deploy refuses what the runtime would (a timer cycle
    faster than its minimum)."""
    trail = AuditTrail(session)
    # Deployments queue here (PostgreSQL: an advisory lock on the definitions stream;
    # SQLite: the writer lock), so two cannot both take the next version of a key.
    trail.head(DEFINITIONS_STREAM)
    bundle = read_files(files)
    if not files:
        bundle.problem(None, None, "nothing to deploy")
    deployed_forms = set(session.scalars(select(Form.key).distinct()))
    if not bundle.problems:
        lint(
            bundle,
            lambda key: _stored_process_xml(session, key),
            lambda decision: decision_versions.stored_xml(session, decision),
            deployed_forms,
            limits.min_timer_interval,
        )
    if bundle.problems:
        raise DiagramInvalid(bundle.problems)

    # Identical content is not a new deployment: keep nothing if nothing changed.
    with session.begin_nested() as savepoint:
        deployment = Deployment(deployed_at=now, deployed_by=actor)
        session.add(deployment)
        session.flush()
        result = DeploymentResult(
            deployment.id, warnings=[*bundle.warnings, *_dropped_milestones(session, bundle)]
        )
        resources = _store_resources(session, deployment, bundle)
        for name, schema in bundle.forms.items():
            result.forms.append(_store_form(session, deployment, schema, bundle.raw[name]))
        for name, root in bundle.dmn.items():
            for stored in decision_versions.store(session, deployment, root, resources[name], now):
                decided = Deployed(*stored)
                result.decisions.append(decided)
                if decided.created:  # bound to latest, it decides from now on: on the trail
                    trail.append(
                        DEFINITIONS_STREAM,
                        EventKind.DECISION_DEPLOYED,
                        at=now,
                        actor=actor,
                        element_id=decided.key,
                        data={
                            "key": decided.key,
                            "version": decided.version,
                            "deployment_id": deployment.id,
                            "file": name,
                        },
                    )
        for name, root in bundle.bpmn.items():
            for key, title in diagrams.process_ids(root):
                deployed = _store_process(
                    session, serializer, bundle, deployment, resources[name], key, title, root, now
                )
                result.definitions.append(deployed)
                if deployed.created:
                    trail.append(
                        DEFINITIONS_STREAM,
                        EventKind.DEFINITION_DEPLOYED,
                        at=now,
                        actor=actor,
                        element_id=key,
                        element_name=title,
                        data={
                            "key": key,
                            "version": deployed.version,
                            "definition_id": deployed.definition_id,
                            "deployment_id": deployment.id,
                            "file": name,
                        },
                    )
        trail.write()
        result.warnings += _callers_kept(session, bundle, result.definitions)
        made = (*result.definitions, *result.forms, *result.decisions)
        if not any(d.created for d in made):
            savepoint.rollback()
            result.deployment_id = None
    return result


def _callers_kept(session: Session, bundle: Bundle, deployed: list[Deployed]) -> list[str]:
    """A warning for each deployed process that calls a process given a new version here:
    a call starts the version that was latest when the caller was deployed."""
    renewed = {d.key: d.version for d in deployed if d.created and d.version > 1}
    if not renewed:
        return []
    in_bundle = {pid for root in bundle.bpmn.values() for pid, _ in diagrams.process_ids(root)}
    newest = (
        select(Definition.key, func.max(Definition.version).label("version"))
        .group_by(Definition.key)
        .subquery()
    )
    found = []
    for key, version in sorted(renewed.items()):
        rows = session.execute(
            select(Definition.key, Resource.content)
            .join(
                newest, (Definition.key == newest.c.key) & (Definition.version == newest.c.version)
            )
            .join(Resource, Resource.id == Definition.resource_id)
            .where(
                Definition.key.not_in(in_bundle),
                Resource.content.contains(f'calledElement="{key}"', autoescape=True),
            )
        ).all()
        for caller, content in sorted(rows):
            process = diagrams.parse_xml(content.encode()).xpath(
                "./bpmn:process[@id=$pid]", namespaces=diagrams.NS, pid=caller
            )
            if any(c == key for node in process for _, c in diagrams.called_elements(node)):
                found.append(
                    f"process '{caller}' calls '{key}' and goes on starting the version that "
                    f"was latest when it was deployed, not version {version}: deploy "
                    f"'{caller}' again to call this one"
                )
    return found


def _dropped_milestones(session: Session, bundle: Bundle) -> list[str]:
    """Warnings for each element the process's latest version has that marks a milestone
    of the measures (engine/reporting/facts.py) and this version no longer has."""
    marks = facts.milestone_elements()
    found = []
    for root in bundle.bpmn.values():
        for key, _ in diagrams.process_ids(root):
            stored = _stored_process_xml(session, key)
            if stored is None:
                continue
            before = diagrams.element_ids(diagrams.parse_xml(stored), key) & marks.keys()
            for element in sorted(before - diagrams.element_ids(root, key)):
                found.append(
                    f"process '{key}': element '{element}' marks a milestone the measures "
                    f"read ({marks[element]}) and this version drops it; instances of this "
                    "version leave those measures blank"
                )
    return found


def _store_resources(
    session: Session, deployment: Deployment, bundle: Bundle
) -> dict[str, Resource]:
    kinds = {
        **{n: ResourceKind.BPMN for n in bundle.bpmn},
        **{n: ResourceKind.DMN for n in bundle.dmn},
        **{n: ResourceKind.FORM for n in bundle.forms},
    }
    stored: dict[str, Resource] = {}
    for name, kind in kinds.items():
        raw = bundle.raw[name]
        resource = Resource(
            deployment_id=deployment.id,
            name=name,
            kind=kind,
            content=raw.decode("utf-8"),
            sha256=_sha(raw),
        )
        session.add(resource)
        stored[name] = resource
    session.flush()
    return stored


def _store_form(
    session: Session, deployment: Deployment, schema: dict[str, object], raw: bytes
) -> Deployed:
    key = str(schema["id"])
    sha = _sha(json.dumps(schema, sort_keys=True))
    current = session.scalars(
        select(Form).where(Form.key == key).order_by(Form.version.desc()).limit(1)
    ).first()
    if current is not None and current.sha256 == sha:
        return Deployed(key, current.version, current.id, False)
    form = Form(
        key=key,
        version=(current.version + 1) if current else 1,
        deployment_id=deployment.id,
        sha256=sha,
        schema=schema,
    )
    session.add(form)
    session.flush()
    return Deployed(key, form.version, form.id, True)


def _store_process(
    session: Session,
    serializer: StateSerializer,
    bundle: Bundle,
    deployment: Deployment,
    resource: Resource,
    key: str,
    title: str | None,
    root: etree._Element,
    now: datetime,
) -> Deployed:
    assert bundle.parser is not None
    spec = bundle.parser.get_spec(key)
    subprocess_specs = bundle.parser.get_subprocess_specs(key)
    try:
        spec_json = serializer.spec_to_json(spec, subprocess_specs)
    except (TypeError, ValueError) as exc:  # an element Spiff parses but cannot store
        raise DiagramInvalid([Problem(f"cannot be stored: {exc}", resource.name, key)]) from exc
    # Same diagram file and same behaviour (called processes, decisions): same version.
    sha = _sha(resource.sha256, spec_json)
    current = latest(session, key)
    if current is not None and current.sha256 == sha:
        return Deployed(key, current.version, current.id, False)
    definition = Definition(
        key=key,
        version=(current.version + 1) if current else 1,
        name=title,
        deployment_id=deployment.id,
        resource_id=resource.id,
        sha256=sha,
        spec_json=spec_json,
        messages=caught_messages(spec, subprocess_specs),
        business_timers=diagrams.business_timers(root, key),
        deployed_at=now,
    )
    session.add(definition)
    session.flush()
    start_timers.schedule(session, key, definition.id, spec, resource.name, now)
    _add_task_rows(
        session, definition.id, [t for t in diagrams.user_tasks(root) if t.process_id == key]
    )
    # User tasks of called processes are routed by the caller's rows, from their own XML
    # (a process that calls itself, through a wait state, has its rows already).
    for sub_key in subprocess_specs:
        if sub_key == key:
            continue
        sub_root = _root_of(bundle, sub_key)
        if sub_root is None:
            stored = _stored_process_xml(session, sub_key)
            sub_root = diagrams.parse_xml(stored) if stored else None
        if sub_root is not None:
            tasks = [t for t in diagrams.user_tasks(sub_root) if t.process_id == sub_key]
            _add_task_rows(session, definition.id, tasks)
            definition.business_timers = [
                *definition.business_timers,
                *diagrams.business_timers(sub_root, sub_key),
            ]
    session.flush()
    return Deployed(key, definition.version, definition.id, True)


def caught_messages(spec: Any, subprocess_specs: dict[str, Any]) -> list[str]:
    """Names of the messages the process (or a process it calls) waits for."""
    names: set[str] = set()
    for process in (spec, *subprocess_specs.values()):
        for task_spec in process.task_specs.values():
            if isinstance(task_spec, CatchingEvent):
                names.update(d.name for d in messages_of(task_spec))
    return sorted(names)


def _add_task_rows(
    session: Session, definition_id: int, tasks: list[diagrams.UserTaskInfo]
) -> None:
    for task in tasks:
        session.add(
            DefinitionTask(
                definition_id=definition_id,
                process_id=task.process_id,
                element_id=task.element_id,
                name=task.name,
                roles=task.roles,
                form_key=task.form_key,
                separate_from=task.separate_from,
                priority=task.priority,
                sla=task.sla,
                properties=task.properties,
                assignment=task.assignment,
            )
        )


def _root_of(bundle: Bundle, process_id: str) -> etree._Element | None:
    for root in bundle.bpmn.values():
        if any(pid == process_id for pid, _ in diagrams.process_ids(root)):
            return root
    return None


def catalog(session: Session) -> list[Definition]:
    """The latest version of every process."""
    newest = (
        select(Definition.key, func.max(Definition.version).label("version"))
        .group_by(Definition.key)
        .subquery()
    )
    return list(
        session.scalars(
            select(Definition)
            .join(
                newest, (Definition.key == newest.c.key) & (Definition.version == newest.c.version)
            )
            .order_by(Definition.key)
        )
    )


def versions(session: Session, key: str) -> list[Definition]:
    found = list(
        session.scalars(
            select(Definition).where(Definition.key == key).order_by(Definition.version.desc())
        )
    )
    if not found:
        raise DefinitionNotFound(f"no process definition '{key}'", key=key)
    return found


def source(session: Session, key: str, version: int | None = None) -> str:
    """The diagram file a definition was deployed from, as uploaded."""
    return session.get_one(Resource, find(session, key, version).resource_id).content
