"""The app's own ``<input>`` rendering writes exactly what the WTForms widgets write.

``service.forms.render_input`` replaces the widgets' attribute building for speed; every
field of every form in the app is rendered both ways, empty, filled in with awkward text,
after a refused submission, and with the attributes the templates pass.
"""

from __future__ import annotations

import importlib
import pkgutil
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.datastructures import MultiDict
from wtforms import Field

import service
from service.forms import FAST_INPUTS
from service.forms import BaseForm

AWKWARD = "<b>\"Tom\" & 'Jerry'</b>"
CHOICES = [(1, "Calm"), (2, AWKWARD), (3, "Dread")]
RENDER_KWARGS: list[dict[str, Any]] = [
    {},
    {"class_": "checklist", "aria_describedby": "x-hint x-error", "aria_invalid": "true"},
    {"min": 0, "max": 100, "step": 1, "required": False, "disabled": True},
    {"value": AWKWARD, "data_base_minutes": 5, "placeholder": AWKWARD},
]


def _forms() -> list[type[BaseForm]]:
    for module in pkgutil.walk_packages(service.__path__, "service."):
        if module.name.rsplit(".", 1)[-1] in ("forms", "views"):  # where forms are declared
            importlib.import_module(module.name)
    found: list[type[BaseForm]] = []
    pending = list(BaseForm.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


FORMS = _forms()


def _fields(form: BaseForm) -> Iterator[Field]:
    for field in form:
        if hasattr(field, "choices") and field.choices is None:
            field.choices = CHOICES  # set by the views before rendering
        yield field
        if field.type == "CheckboxListField":
            yield from field  # one checkbox per choice, each an input of its own


def _filled(form: BaseForm) -> MultiDict[str, str]:
    data: MultiDict[str, str] = MultiDict()
    for field in form:
        if field.type in ("IntegerRangeField", "IntegerField", "DecimalField", "FloatField"):
            data.add(field.name, "42")
        elif hasattr(field, "choices"):
            data.add(field.name, "2")
            data.add(field.name, "3")
        elif field.type != "FileField":
            data.add(field.name, AWKWARD)
    return data


@pytest.fixture(scope="module")
def app() -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secrets.token_hex(16), WTF_CSRF_ENABLED=False)
    return app


def test_every_form_of_the_app_is_checked():
    names = {cls.__name__ for cls in FORMS}
    assert {"PredictionForm", "OutcomeForm", "TaskForm", "SigninForm"} <= names


@pytest.mark.parametrize("form_class", FORMS, ids=lambda cls: cls.__name__)
def test_inputs_render_exactly_as_the_wtforms_widgets_do(app, form_class):
    fast = 0
    with app.test_request_context():
        filled = _filled(form_class(meta={"csrf": False}))
    for state in ("empty", "filled", "refused"):
        method = "GET" if state == "empty" else "POST"
        formdata = None if state == "empty" else filled
        with app.test_request_context(method=method, data=formdata):
            form = form_class(meta={"csrf": False})
            for field in _fields(form):
                if state == "refused":
                    field.errors = ["Not like that."]
                for kwargs in RENDER_KWARGS:
                    expected = field.widget(field, **dict(field.render_kw or {}, **kwargs))
                    assert str(field(**kwargs)) == str(expected), (field.name, state, kwargs)
                fast += type(field.widget) in FAST_INPUTS
    if form_class.__name__ in ("PredictionForm", "OutcomeForm"):
        assert fast >= 3 * 8  # the sliders, numbers, texts and emotion checkboxes
