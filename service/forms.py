"""Form building blocks shared by the feature packages (Flask-WTF, so CSRF is built in)."""

from __future__ import annotations

import math
from collections.abc import Hashable
from decimal import Decimal
from typing import Any

from flask import render_template
from flask_wtf import FlaskForm
from markupsafe import Markup
from markupsafe import escape
from wtforms import DecimalField
from wtforms import Field
from wtforms import FloatField
from wtforms import IntegerField
from wtforms import IntegerRangeField
from wtforms import SelectMultipleField
from wtforms import StringField
from wtforms import widgets
from wtforms.validators import DataRequired
from wtforms.validators import InputRequired
from wtforms.validators import Length
from wtforms.validators import NumberRange
from wtforms.validators import Optional
from wtforms.validators import StopValidation
from wtforms.validators import ValidationError
from wtforms.widgets import Select
from wtforms.widgets.core import clean_key

from db.models import EMOTION_NAME_MAX

NUL_MESSAGE = "This contains a character that isn't allowed (NUL)."
NUMBER_MESSAGE = "Enter an ordinary number."
MAX_MINUTES = 100_000


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

        def render_field(self, field: Field, render_kw: dict[str, Any]) -> Markup:
            """The field's HTML; the common ``<input>`` widgets through :func:`render_input`."""
            other = getattr(field, "render_kw", None)
            if other is not None:
                render_kw = dict(other, **render_kw)
            if type(field.widget) in FAST_INPUTS and getattr(field, "_datalist", None) is None:
                return render_input(field, render_kw)
            html: Markup = field.widget(field, **render_kw)
            return html

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if not _no_nul(field.data):
                field.errors = [*field.errors, NUL_MESSAGE]
                valid = False
        return valid


# The <input> widgets rendered by render_input: exactly these classes, not subclasses.
FAST_INPUTS = frozenset(
    {
        widgets.TextInput,
        widgets.NumberInput,
        widgets.RangeInput,
        widgets.HiddenInput,
        widgets.CheckboxInput,
        widgets.EmailInput,
    }
)


class ConfirmForm(BaseForm):
    """A button-only form: the CSRF token is its only field."""


def render_input(field: Field, render_kw: dict[str, Any]) -> Markup:
    """What the field's WTForms ``<input>`` widget writes, attribute for attribute.

    WTForms builds every attribute through ``Markup.format``; on the form pages (a dozen
    inputs, a checkbox per emotion) that was about a fifth of the page's CPU. This writes the
    same HTML with plain string formatting (tests/unit/test_forms_render.py compares the
    two for every field of every form).
    """
    widget = field.widget
    kwargs = dict(render_kw)
    if isinstance(widget, widgets.NumberInput):
        for name in ("step", "min", "max"):
            value = getattr(widget, name)
            if value is not None:
                kwargs.setdefault(name, value)
    if isinstance(widget, widgets.CheckboxInput) and getattr(field, "checked", field.data):
        kwargs.setdefault("checked", True)
    kwargs.setdefault("id", field.id)
    kwargs.setdefault("type", widget.input_type)
    if "value" not in kwargs:
        kwargs["value"] = field._value()
    flags = vars(field.flags)
    for name in widget.validation_attrs:
        if name in flags and name not in kwargs:
            value = flags[name]
            kwargs[name] = value() if callable(value) else value
    kwargs["name"] = field.name
    return Markup(f"<input {_html_params(kwargs)}>")


def _html_params(attributes: dict[str, Any]) -> str:
    """WTForms' ``html_params``: sorted, ``True`` bare, ``False`` left out, values escaped."""
    params = []
    for key, value in sorted(attributes.items()):
        name = escape(clean_key(key))
        if value is True:
            params.append(str(name))
        elif value is not False:
            params.append(f'{name}="{escape(value)}"')
    return " ".join(params)


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


def minutes_field(label: str, required: bool = False) -> DecimalField:
    return DecimalField(
        label,
        places=None,
        validators=[
            DataRequired("Enter a number of minutes.") if required else Optional(),
            NumberRange(0, MAX_MINUTES, f"Enter minutes from 0 to {MAX_MINUTES:,}."),
        ],
        render_kw={"inputmode": "decimal"},
    )


class SelectRenderedOnce(Select):
    """A ``<select>`` rendered once per distinct field state and kept (per process).

    WTForms builds each ``<option>`` through ``html_params`` and ``Markup.format``: for
    the ~600 time zones that was nearly all of the account page's CPU (~20 ms). The HTML
    only depends on what the key holds (choices, selection, attributes), so it is safe to
    share between requests and people. Fields with unhashable state render as usual.
    """

    KEEP = 256  # distinct renderings (a time-zone select is ~30 KB)
    _rendered: dict[Hashable, Markup] = {}

    def __call__(self, field: Field, **kwargs: Any) -> Markup:
        key = (
            type(field),
            field.id,
            field.name,
            field.data,
            tuple(getattr(field, "choices", None) or ()),
            tuple(sorted(kwargs.items())),
            bool(getattr(field.flags, "required", False)),
        )
        try:
            html = self._rendered.get(key)
        except TypeError:  # something unhashable (a list of selected values, say)
            return super().__call__(field, **kwargs)
        if html is None:
            html = super().__call__(field, **kwargs)
            if len(self._rendered) >= self.KEEP:
                self._rendered.pop(next(iter(self._rendered)), None)  # the oldest
            self._rendered[key] = html
        return html


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


INTENSITY_MAX = 100


class _IntensityInputs:
    """Every emotion's intensity input (the templates place each next to its checkbox)."""

    def __call__(self, field: IntensitiesField, **kwargs: Any) -> Markup:
        return Markup("").join(field.input(emotion_id) for emotion_id, _name in field.choices)


class IntensitiesField(Field):
    """How strongly each chosen emotion is felt, 0–100 (optional for each).

    One number input per emotion of the form's checklist, named ``<name>-<emotion id>``:
    plain inputs, so the form works without JavaScript. ``data`` maps emotion ids to
    intensities (the inputs left empty are not in it); ``choices`` are the checklist's.
    An intensity given to an emotion that isn't ticked is refused with a message: it would
    otherwise be lost without a word.
    """

    widget = _IntensityInputs()

    def __init__(self, label: str = "Intensity (0–100)", **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.choices: list[tuple[int, str]] = []
        self.raw: dict[int, str] = {}

    def process(self, formdata: Any, data: Any = None, extra_filters: Any = None) -> None:
        self.process_errors: list[Any] = []
        given = data if isinstance(data, dict) else {}
        self.object_data = given
        self.data: dict[int, int] = {}
        self.raw = {int(k): str(v) for k, v in given.items() if v is not None}
        if formdata is not None:
            prefix = f"{self.name}-"
            self.raw = {
                int(key[len(prefix) :]): str(formdata.get(key, "")).strip()
                for key in formdata
                if key.startswith(prefix)
                and key[len(prefix) :].isdigit()
                and len(key) < len(prefix) + 19
            }
        for emotion_id, value in self.raw.items():
            if value.isdigit() and len(value) <= 3:
                self.data[emotion_id] = int(value)

    def pre_validate(self, form: Any) -> None:
        names = dict(self.choices)
        chosen = set(form.emotions.data or [])
        for emotion_id, value in sorted(self.raw.items()):
            if not value:
                continue
            name = names.get(emotion_id)
            if name is None:
                raise StopValidation("Give intensities to your own emotions only.")
            if emotion_id not in self.data or not 0 <= self.data[emotion_id] <= INTENSITY_MAX:
                raise StopValidation(
                    f"Intensity of “{name}”: enter a whole number from 0 to {INTENSITY_MAX}."
                )
            if emotion_id not in chosen:
                raise StopValidation(
                    f"You gave “{name}” an intensity without ticking it: tick it, or clear "
                    "the intensity."
                )

    def chosen(self, emotion_ids: list[int]) -> dict[int, int | None]:
        """The intensity of each of these emotions (none where it was left empty)."""
        return {emotion_id: self.data.get(emotion_id) for emotion_id in emotion_ids}

    def input_id(self, emotion_id: int) -> str:
        return f"{self.id}-{emotion_id}"

    def input(self, emotion_id: int) -> Markup:
        """One emotion's number input with its label, and the error's id when refused.

        The label is "Intensity (0–100)", and the emotion's name is the input's
        description: a label holding the name would also be found by the name alone, and
        the emotion's checkbox is what its name labels.
        """
        name = dict(self.choices).get(emotion_id, "")
        field_id = self.input_id(emotion_id)
        described = [f"{field_id}-emotion"]
        if self.errors:
            described.append(f"{self.id}-error")
        attributes = {
            "id": field_id,
            "name": field_id,
            "type": "number",
            "min": 0,
            "max": INTENSITY_MAX,
            "step": 1,
            "inputmode": "numeric",
            "class": "intensity",
            "value": self.raw.get(emotion_id, ""),
            "aria-describedby": " ".join(described),
        }
        return Markup(
            f'<label class="intensity-label" for="{escape(field_id)}">Intensity (0–100)</label>'
            f"<input {_html_params(attributes)}>"
            f'<span class="visually-hidden" id="{escape(field_id)}-emotion">'
            f"of {escape(name)}</span>"
        )
