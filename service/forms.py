"""Form building blocks shared by the feature packages (Flask-WTF, so CSRF is built in)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from flask import render_template
from flask_wtf import FlaskForm
from wtforms import DecimalField
from wtforms import Field
from wtforms import FloatField
from wtforms import IntegerField
from wtforms import IntegerRangeField
from wtforms import SelectMultipleField
from wtforms import StringField
from wtforms import widgets
from wtforms.validators import InputRequired
from wtforms.validators import Length
from wtforms.validators import NumberRange
from wtforms.validators import StopValidation
from wtforms.validators import ValidationError

from db.models import EMOTION_NAME_MAX

NUL_MESSAGE = "This contains a character that isn't allowed (NUL)."
NUMBER_MESSAGE = "Enter an ordinary number."


def _no_nul(data: Any) -> bool:
    if isinstance(data, str):
        return "\x00" not in data
    if isinstance(data, list | tuple):
        return all(_no_nul(item) for item in data)
    return True


class BaseForm(FlaskForm):
    """Every form: strips surrounding spaces and refuses NUL characters everywhere.

    PostgreSQL text can't hold NUL; refusing it here gives the person a message next to
    the field instead of a server error.
    """

    class Meta:
        def bind_field(self, form: Any, unbound_field: Any, options: dict[str, Any]) -> Field:
            filters = unbound_field.kwargs.get("filters", [])
            if unbound_field.field_class in (StringField,) or issubclass(
                unbound_field.field_class, StringField
            ):
                filters = [_strip, *filters]
            if issubclass(unbound_field.field_class, DecimalField | FloatField | IntegerField):
                validators = [_finite_number, *unbound_field.kwargs.get("validators", [])]
                options = {**options, "validators": validators}
            return unbound_field.bind(form=form, filters=filters, **options)

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if not _no_nul(field.data):
                field.errors = [*field.errors, NUL_MESSAGE]
                valid = False
        return valid


def render_form(template: str, form: FlaskForm, **context: Any) -> tuple[str, int]:
    """Show a form page: 200 when first opened, 400 when a submission was refused."""
    status = 400 if form.is_submitted() else 200
    return render_template(template, form=form, **context), status


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _finite_number(_form: Any, field: Field) -> None:
    """Refuse "sNaN", "NaN", "Infinity" and integers too large for a float.

    NumberRange converts to float and raises (a 500) on sNaN and on a 400-digit integer.
    """
    if isinstance(field.data, Decimal | float | int) and not isinstance(field.data, bool):
        try:
            finite = math.isfinite(float(field.data))
        except (OverflowError, ValueError):
            finite = False
        if not finite:
            raise StopValidation(NUMBER_MESSAGE)


def scale_field(label: str, high: int = 100, **kwargs: Any) -> IntegerRangeField:
    return IntegerRangeField(
        label,
        validators=[InputRequired(), NumberRange(0, high, f"Choose a value from 0 to {high}.")],
        default=50,
        **kwargs,
    )


class CheckboxListField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def emotion_checklist(label: str = "Emotions") -> CheckboxListField:
    return CheckboxListField(label, coerce=int, validate_choice=True)


def new_emotions_field(label: str = "Add emotions (comma-separated)") -> StringField:
    return StringField(
        label,
        validators=[Length(max=500), check_new_emotions],
        description="New words are added to your own list.",
    )


def parse_new_emotions(raw: str | None) -> list[str]:
    """Split "calm, Anxious ,calm" into distinct names (case-insensitive), in order."""
    seen: set[str] = set()
    names: list[str] = []
    for part in (raw or "").split(","):
        name = " ".join(part.split())
        if name and name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return names


def check_new_emotions(_form: Any, field: Field) -> None:
    for name in parse_new_emotions(field.data):
        if len(name) > EMOTION_NAME_MAX:
            raise ValidationError(f"Each emotion can be at most {EMOTION_NAME_MAX} characters.")
