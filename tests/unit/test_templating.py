"""The app's Jinja environment reads rows (dicts) first as items, meaning what Jinja means."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from flask import Flask
from jinja2 import FileSystemLoader

from service.templating import Environment
from service.templating import minutes


def _render(source: str, **context: object) -> str:
    environment = Environment(Flask(__name__), autoescape=True)
    return environment.from_string(source).render(**context)


def test_a_rows_values_and_a_dicts_own_methods_read_as_jinja_reads_them() -> None:
    row = {"task_name": "Call <the> bank", "items": 3, "minutes": 0, "none": None}
    # A value by name, escaped as any other; a falsy value is still the value.
    assert _render("{{ r.task_name }}|{{ r.minutes }}|{{ r.none }}", r=row) == (
        "Call &lt;the&gt; bank|0|None"
    )
    # A name missing from the row is undefined, as with Jinja's own lookup.
    assert _render("{{ r.missing }}|{{ r.missing is defined }}", r=row) == "|False"
    # A name that is also a dict's attribute keeps Jinja's meaning: the method first.
    assert _render("{{ r.items() | list | length }}", r=row) == "4"
    # Anything but a plain dict goes Jinja's way (attribute, then item).
    ordered = OrderedDict(task_name="Tidy up")
    assert _render("{{ r.task_name }}|{{ r.keys() | join(',') }}", r=ordered) == "Tidy up|task_name"


def test_a_timer_started_a_moment_ago_gives_its_script_a_plain_number() -> None:
    """The running timer's base minutes, read by app.js and by people's tools: a plain
    decimal also a few milliseconds after a start (Python would write 5e-05)."""
    templates = Path(__file__).resolve().parents[2] / "service" / "templates"
    environment = Environment(Flask(__name__), loader=FileSystemLoader(templates))
    environment.filters["minutes"] = minutes
    timer = environment.get_template("_macros.html").module.elapsed_timer  # type: ignore[attr-defined]
    for value, shown in ((0.00005, "0.0001"), (0.0, "0.0000"), (12.34567, "12.3457")):
        assert f'data-base-minutes="{shown}"' in str(timer(value))
