from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import url_for
from flask.typing import ResponseReturnValue

from db.models import OUTCOME_SCALES
from db.models import Attempt
from db.models import Task
from db.models import utcnow
from service import auth
from service import database
from service.attempts import services
from service.attempts.forms import END_OF_DAY
from service.attempts.forms import OUTCOME_LABELS
from service.attempts.forms import PHYSICAL_CONTEXTS
from service.attempts.forms import PREDICTION_LABELS
from service.attempts.forms import CancelForm
from service.attempts.forms import FixOutcomeForm
from service.attempts.forms import OutcomeForm
from service.attempts.forms import PauseForm
from service.attempts.forms import PostponeForm
from service.attempts.forms import PredictionForm
from service.attempts.forms import local_day_and_time
from service.attempts.forms import local_instant
from service.emotions.services import chosen_emotion_ids
from service.emotions.services import emotion_choices
from service.forms import ConfirmForm
from service.forms import parse_new_emotions
from service.forms import render_form
from service.tasks.services import get_task_or_404

bp = Blueprint("attempts", __name__)


def _owned_attempt(attempt_id: int) -> tuple[Attempt, Task]:
    return services.get_attempt_and_task_or_404(database.session(), auth.user().id, attempt_id)


def _refused(error: services.AttemptStateError) -> ResponseReturnValue:
    database.rollback()
    flash(str(error), "error")
    return redirect(url_for("dashboard.index"))


def _emotions(form: PredictionForm | OutcomeForm) -> list[int]:
    return chosen_emotion_ids(
        database.session(),
        auth.user().id,
        form.emotions.data,
        parse_new_emotions(form.new_emotions.data),
    )


def _save_emotions(
    attempt: Attempt, phase: str, form: PredictionForm | OutcomeForm, *, new: bool = False
) -> None:
    """The form's chosen emotions (and words typed in) of ``phase``, with intensities."""
    chosen = _emotions(form)
    services.set_emotions(
        database.session(),
        attempt,
        phase,
        chosen,
        new=new,
        intensities=form.intensities.chosen(chosen),
    )


def _prediction_form(
    task: Task,
    attempt: Attempt | None,
    averages: dict[str, Any],
    choices: list[tuple[int, str]],
) -> PredictionForm:
    """The prediction form with its defaults: the attempt's prediction, else the averages."""
    if attempt is not None:
        defaults: dict[str, Any] = {f: getattr(attempt, f) for f in services.PREDICTION_FIELDS}
        defaults["intensities"] = services.emotion_intensities(
            database.session(), attempt, "before"
        )
        defaults["emotions"] = list(defaults["intensities"])
        defaults["due_date"], defaults["due_time"] = local_day_and_time(
            attempt.due_at, auth.user().timezone
        )
    else:
        defaults = services.default_prediction(task, averages)
        defaults["time_estimate_minutes"] = _plain_number(defaults["time_estimate_minutes"])
    form = PredictionForm(data=defaults)
    form.emotions.choices = form.intensities.choices = choices
    return form


def _outcome(form: OutcomeForm) -> dict[str, Any]:
    """What the outcome form says, as services.complete_attempt and fix_outcome take it."""
    outcome = {name: getattr(form, name).data for name in (*OUTCOME_SCALES, "completion_percent")}
    outcome["minutes_spent"] = float(form.minutes_spent.data or 0)
    outcome["notes"] = form.notes.data or ""
    return outcome


def _plain_number(value: float | None) -> float | int | None:
    """45.0 → 45 for the form (a float would show as "45.0")."""
    return int(value) if value is not None and value.is_integer() else value


def _prediction(form: PredictionForm) -> dict[str, Any]:
    values: dict[str, Any] = {
        name: getattr(form, name).data for name in services.PREDICTION_FIELDS if name != "due_at"
    }
    values["due_at"] = local_instant(
        form.due_date.data, form.due_time.data, auth.user().timezone, END_OF_DAY
    )
    estimate = values["time_estimate_minutes"]
    values["time_estimate_minutes"] = float(estimate) if estimate is not None else None
    values["physical_context"] = values["physical_context"] or None
    return values


def _render_prediction(
    form: PredictionForm, averages: dict[str, Any], task: Task, attempt: Attempt | None
) -> ResponseReturnValue:
    return render_form(
        "attempts/prediction.html",
        form,
        averages=averages,
        task=task,
        attempt=attempt,
        labels=PREDICTION_LABELS,
        contexts=PHYSICAL_CONTEXTS,
    )


@bp.route("/tasks/<int:task_id>/initialize", methods=["GET", "POST"])
@auth.login_required
def initialize(task_id: int) -> ResponseReturnValue:
    db = database.session()
    task, averages, choices = services.task_form_or_404(db, auth.user().id, task_id)
    form = _prediction_form(task, None, averages, choices)
    if form.validate_on_submit():
        try:
            attempt = services.initialize_attempt(db, task, _prediction(form))
        except services.AttemptStateError as error:
            return _refused(error)
        _save_emotions(attempt, "before", form, new=True)
        database.commit()
        flash(f"“{task.name}” is ready to start.")
        return redirect(url_for("dashboard.index"))
    return _render_prediction(form, averages, task, None)


@bp.post("/tasks/<int:task_id>/quick-initialize")
@auth.login_required
def quick_initialize(task_id: int) -> ResponseReturnValue:
    """One click: a prediction made of your averages for this task (editable later)."""
    db = database.session()
    task = get_task_or_404(db, auth.user().id, task_id)
    averages = services.task_averages(db, auth.user().id, task.id)
    try:
        services.initialize_attempt(db, task, services.default_prediction(task, averages))
    except services.AttemptStateError as error:
        return _refused(error)
    database.commit()
    flash(f"“{task.name}” is ready to start (prediction from your averages).")
    return redirect(url_for("dashboard.index"))


@bp.route("/attempts/<int:attempt_id>/prediction", methods=["GET", "POST"])
@auth.login_required
def prediction(attempt_id: int) -> ResponseReturnValue:
    db = database.session()
    attempt, task, averages, choices = services.attempt_form_or_404(db, auth.user().id, attempt_id)
    form = _prediction_form(task, attempt, averages, choices)
    if form.validate_on_submit():
        services.apply_prediction(attempt, _prediction(form))
        _save_emotions(attempt, "before", form)
        database.commit()
        flash("Prediction saved.")
        if attempt.status in services.OPEN_STATUSES:
            return redirect(url_for("dashboard.index"))
        return redirect(url_for("attempts.show", attempt_id=attempt.id))
    return _render_prediction(form, averages, task, attempt)


@bp.get("/attempts/<int:attempt_id>")
@auth.login_required
def show(attempt_id: int) -> ResponseReturnValue:
    attempt, task = _owned_attempt(attempt_id)
    db = database.session()
    now = utcnow()
    names = dict(emotion_choices(db, auth.user().id))
    emotions = {
        phase: [
            names[e] if intensity is None else f"{names[e]} ({intensity})"
            for e, intensity in services.emotion_intensities(db, attempt, phase).items()
            if e in names
        ]
        for phase in ("before", "after")
    }
    return render_template(
        "attempts/show.html",
        attempt=attempt,
        task=task,
        emotions=emotions,
        elapsed=services.elapsed_minutes(attempt),
        overdue=services.is_overdue(attempt.status, attempt.due_at, now),
        postponed=services.is_postponed(
            attempt.status, attempt.postponed_at, attempt.postponed_until, now
        ),
        prediction_labels=PREDICTION_LABELS,
        outcome_labels=OUTCOME_LABELS,
    )


@bp.post("/attempts/<int:attempt_id>/start")
@auth.login_required
def start(attempt_id: int) -> ResponseReturnValue:
    attempt, task = _owned_attempt(attempt_id)
    resuming = attempt.status == "paused"
    try:
        services.start_attempt(database.session(), attempt, task.name)
    except services.AttemptStateError as error:
        return _refused(error)
    database.commit()
    flash(f"{'Resumed' if resuming else 'Started'} “{task.name}”.")
    return redirect(url_for("dashboard.index"))


@bp.post("/attempts/<int:attempt_id>/pause")
@auth.login_required
def pause(attempt_id: int) -> ResponseReturnValue:
    form = PauseForm()
    attempt, task = _owned_attempt(attempt_id)
    if not form.validate_on_submit():
        flash(" ".join(form.reason.errors) or "Please try again.", "error")
        return redirect(url_for("dashboard.index"))
    try:
        services.pause_attempt(attempt, form.reason.data or "")
    except services.AttemptStateError as error:
        return _refused(error)
    database.commit()
    flash(f"Paused “{task.name}” after {attempt.minutes_spent:.0f} min.")
    return redirect(url_for("dashboard.index"))


@bp.route("/attempts/<int:attempt_id>/complete", methods=["GET", "POST"])
@auth.login_required
def complete(attempt_id: int) -> ResponseReturnValue:
    db = database.session()
    attempt, task, averages, choices = services.attempt_form_or_404(db, auth.user().id, attempt_id)
    tracked = services.elapsed_minutes(attempt) if attempt.started_at else None
    defaults: dict[str, Any] = dict(services.slider_defaults(averages, OUTCOME_SCALES))
    defaults["completion_percent"] = 100
    defaults["minutes_spent"] = round(
        tracked if tracked is not None else attempt.time_estimate_minutes or 0, 1
    )
    form = OutcomeForm(data=defaults)
    form.emotions.choices = form.intensities.choices = choices
    if form.validate_on_submit():
        outcome = _outcome(form)
        try:
            services.complete_attempt(attempt, outcome)
        except services.AttemptStateError as error:
            return _refused(error)
        _save_emotions(attempt, "after", form)
        database.commit()
        flash(f"Completed “{task.name}”. Well done.")
        return redirect(url_for("dashboard.index"))
    return render_form(
        "attempts/complete.html",
        form,
        task=task,
        attempt=attempt,
        averages=averages,
        labels=OUTCOME_LABELS,
        tracked=tracked,
    )


@bp.route("/attempts/<int:attempt_id>/cancel", methods=["GET", "POST"])
@auth.login_required
def cancel(attempt_id: int) -> ResponseReturnValue:
    attempt, task = _owned_attempt(attempt_id)
    tracked = services.elapsed_minutes(attempt) if attempt.started_at else None
    form = CancelForm(
        data={
            "completion_percent": 0,
            "minutes_spent": round(tracked, 1) if tracked is not None else None,
        }
    )
    if form.validate_on_submit():
        cancellation = {
            "category": form.category.data or None,
            "reason": form.reason.data,
            "completion_percent": form.completion_percent.data,
            "minutes_spent": (
                float(form.minutes_spent.data) if form.minutes_spent.data is not None else None
            ),
            "notes": form.notes.data,
        }
        try:
            services.cancel_attempt(attempt, cancellation)
        except services.AttemptStateError as error:
            return _refused(error)
        database.commit()
        flash(f"Cancelled “{task.name}”.")
        return redirect(url_for("dashboard.index"))
    return render_form("attempts/cancel.html", form, task=task, attempt=attempt)


@bp.route("/attempts/<int:attempt_id>/postpone", methods=["GET", "POST"])
@auth.login_required
def postpone(attempt_id: int) -> ResponseReturnValue:
    """Put an open attempt off, with a reason and optionally until when."""
    attempt, task = _owned_attempt(attempt_id)
    if attempt.status not in services.OPEN_STATUSES:
        return _refused(services.AttemptStateError(f"This attempt is already {attempt.status}."))
    form = PostponeForm()
    if form.validate_on_submit():
        until = local_instant(
            form.until_date.data, form.until_time.data, auth.user().timezone, dt.time()
        )
        try:
            services.postpone_attempt(attempt, form.reason.data, until)
        except services.AttemptStateError as error:
            form.until_date.errors = [str(error)]
        else:
            database.commit()
            flash(f"Postponed “{task.name}”.")
            return redirect(url_for("dashboard.index"))
    return render_form("attempts/postpone.html", form, task=task, attempt=attempt)


@bp.post("/attempts/<int:attempt_id>/unpostpone")
@auth.login_required
def unpostpone(attempt_id: int) -> ResponseReturnValue:
    """A postponed attempt back among the ready ones."""
    attempt, task = _owned_attempt(attempt_id)
    try:
        services.unpostpone_attempt(attempt)
    except services.AttemptStateError as error:
        return _refused(error)
    database.commit()
    flash(f"“{task.name}” is back in Ready.")
    return redirect(url_for("dashboard.index"))


@bp.route("/attempts/<int:attempt_id>/outcome", methods=["GET", "POST"])
@auth.login_required
def fix_outcome(attempt_id: int) -> ResponseReturnValue:
    """Correct a completed attempt: its outcome, emotions afterwards, time spent and when."""
    db = database.session()
    attempt, task, averages, choices = services.attempt_form_or_404(db, auth.user().id, attempt_id)
    if attempt.status != "completed":
        return _refused(
            services.AttemptStateError("Only a completed attempt has an outcome to fix.")
        )
    timezone = auth.user().timezone
    defaults: dict[str, Any] = {name: getattr(attempt, name) for name in services.OUTCOME_FIELDS}
    defaults["minutes_spent"] = _plain_number(attempt.minutes_spent)
    defaults["intensities"] = services.emotion_intensities(db, attempt, "after")
    defaults["emotions"] = list(defaults["intensities"])
    defaults["completed_date"], defaults["completed_time"] = local_day_and_time(
        attempt.completed_at, timezone
    )
    form = FixOutcomeForm(data=defaults)
    form.emotions.choices = form.intensities.choices = choices
    if form.validate_on_submit():
        outcome = _outcome(form)
        completed_at = local_instant(
            form.completed_date.data, form.completed_time.data, timezone, dt.time()
        )
        assert completed_at is not None  # both are required
        try:
            services.fix_outcome(attempt, outcome, completed_at)
        except services.AttemptStateError as error:
            form.completed_date.errors = [str(error)]
        else:
            _save_emotions(attempt, "after", form)
            database.commit()
            flash("Outcome saved.")
            return redirect(url_for("attempts.show", attempt_id=attempt.id))
    return render_form(
        "attempts/complete.html",
        form,
        task=task,
        attempt=attempt,
        averages=averages,
        labels=OUTCOME_LABELS,
        tracked=None,
        fixing=True,
    )


@bp.route("/attempts/<int:attempt_id>/delete", methods=["GET", "POST"])
@auth.login_required
def delete(attempt_id: int) -> ResponseReturnValue:
    """Delete an attempt, after a confirmation page."""
    attempt, task = _owned_attempt(attempt_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        services.delete_attempt(database.session(), attempt)
        database.commit()
        flash(f"Deleted the attempt at “{task.name}”.")
        return redirect(url_for("history.index"))
    return render_form("attempts/delete.html", form, task=task, attempt=attempt)
