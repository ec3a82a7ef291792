from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from db.models import EVERY_DAY
from db.models import Task
from service import auth
from service import database
from service import routines
from service.emotions.services import chosen_emotion_ids
from service.forms import ConfirmForm
from service.forms import parse_new_emotions
from service.forms import render_form
from service.groups import services as groups
from service.tasks import services
from service.tasks.forms import TaskForm

bp = Blueprint("tasks", __name__, url_prefix="/tasks")


def _form(choices: services.TaskChoices, **defaults: Any) -> TaskForm:
    form = TaskForm(**defaults)
    form.emotions.choices = choices.emotions
    form.groups.choices = choices.groups
    return form


def _values(form: TaskForm) -> dict[str, Any]:
    return {
        "name": form.name.data,
        "description": form.description.data or "",
        "kind": form.kind.data,
        "default_estimate_minutes": float(form.default_estimate_minutes.data or 0),
        **_routine_values(form),
    }


def _routine_values(form: TaskForm) -> dict[str, Any]:
    """The task's schedule columns from the form's Repeat fields (all none: no routine)."""
    repeat = form.repeat.data
    if repeat not in ("daily", "weekdays"):
        return {"routine_frequency": None, "routine_weekdays": None, "routine_time": None}
    days = EVERY_DAY if repeat == "daily" else routines.weekday_mask(form.repeat_days.data)
    return {
        "routine_frequency": repeat,
        "routine_weekdays": days,
        "routine_time": dt.time.fromisoformat(form.repeat_time.data),
    }


def _routine_defaults(task: Task) -> dict[str, Any]:
    """The Repeat fields as the task's schedule sets them."""
    if task.routine_frequency is None or task.routine_time is None:
        return {"repeat": "none"}
    return {
        "repeat": task.routine_frequency,
        "repeat_days": routines.weekdays_of(task.routine_weekdays or 0),
        "repeat_time": task.routine_time.strftime("%H:%M"),
    }


def _emotion_ids(form: TaskForm) -> list[int]:
    return chosen_emotion_ids(
        database.session(),
        auth.user().id,
        form.emotions.data,
        parse_new_emotions(form.new_emotions.data),
    )


@bp.route("/new", methods=["GET", "POST"])
@auth.login_required
def new() -> ResponseReturnValue:
    db = database.session()
    form = _form(services.new_task_choices(db, auth.user().id))
    if form.validate_on_submit():
        task = services.create_task(db, auth.user().id, _values(form))
        services.set_tracked_emotions(db, task, _emotion_ids(form))
        groups.set_task_groups(db, task, form.groups.data or [], current=[])  # a new task
        database.commit()
        flash(f"Created “{task.name}”.")
        return redirect(url_for("dashboard.index"))
    return render_form("tasks/form.html", form, task=None)


@bp.route("/<int:task_id>/edit", methods=["GET", "POST"])
@auth.login_required
def edit(task_id: int) -> ResponseReturnValue:
    db = database.session()
    data = services.task_form_or_404(db, auth.user().id, task_id)
    task = data.task
    form = _form(
        data.choices,
        obj=task,
        emotions=data.tracked_ids,
        groups=data.group_ids,
        **_routine_defaults(task),
    )
    if form.validate_on_submit():
        # Groups are no part of the task's definition: changing them alone keeps its version.
        regrouped = groups.set_task_groups(db, task, form.groups.data or [], data.group_ids)
        values, emotion_ids = _values(form), _emotion_ids(form)
        if services.update_task(db, task, values, emotion_ids, data.tracked_ids):
            database.commit()
            flash(f"Saved “{task.name}” (version {task.version}).")
        elif regrouped:
            database.commit()
            flash(f"Saved the groups of “{task.name}”.")
        else:
            flash("Nothing changed.")
        return redirect(url_for("dashboard.index"))
    return render_form("tasks/form.html", form, task=task)


@bp.post("/<int:task_id>/archive")
@auth.login_required
def archive(task_id: int) -> ResponseReturnValue:
    task = services.get_task_or_404(database.session(), auth.user().id, task_id)
    services.archive_task(task)
    database.commit()
    flash(f"Archived “{task.name}”. Its history stays in your analytics.")
    return redirect(url_for("dashboard.index"))


@bp.post("/<int:task_id>/restore")
@auth.login_required
def restore(task_id: int) -> ResponseReturnValue:
    task = services.get_task_or_404(database.session(), auth.user().id, task_id)
    services.restore_task(task)
    database.commit()
    flash(f"Restored “{task.name}”.")
    return redirect(url_for("tasks.archived"))


@bp.get("/archived")
@auth.login_required
def archived() -> ResponseReturnValue:
    tasks = database.session().scalars(
        select(Task)
        .where(Task.user_id == auth.user().id, Task.archived_at.is_not(None))
        .order_by(Task.archived_at.desc())
    )
    return render_template("tasks/archived.html", tasks=list(tasks), form=ConfirmForm())
