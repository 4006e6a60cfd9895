"""A task's submission is checked against the latest deployed version of its form."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import FormInvalid
from engine.models import Form
from forms import ValidationError, validate_submission


def check_submission(session: Session, form_key: str | None, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise FormInvalid("task data must be an object of variables")
    bad = [k for k in data if not isinstance(k, str) or not k.isidentifier() or k.startswith("__")]
    if bad:
        raise FormInvalid(f"variable names must be identifiers: {bad!r}", names=bad)
    if form_key is None:
        return dict(data)
    form = session.scalars(
        select(Form).where(Form.key == form_key).order_by(Form.version.desc()).limit(1)
    ).first()
    if form is None:
        raise FormInvalid(f"form '{form_key}' is not deployed", form=form_key)
    try:
        return validate_submission(form.schema, data)
    except ValidationError as exc:
        raise FormInvalid(
            f"the submission does not fit form '{form_key}'", form=form_key, errors=exc.messages
        ) from exc
