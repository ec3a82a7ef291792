from __future__ import annotations

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import url_for
from flask.typing import ResponseReturnValue
from wtforms import DecimalField
from wtforms.validators import NumberRange
from wtforms.validators import Optional

from service import auth
from service import database
from service import recommendations
from service.attempts.forms import PauseForm
from service.attempts.services import minutes_so_far
from service.dashboard import queries
from service.forms import BaseForm
from service.forms import CheckboxListField

bp = Blueprint("dashboard", __name__)


class RecommendationForm(BaseForm):
    measures = CheckboxListField(
        "What matters to you now",
        choices=[(key, label) for key, (label, _) in recommendations.MEASURES.items()],
    )
    max_minutes = DecimalField(
        "Longest I have time for (minutes)",
        places=None,
        validators=[Optional(), NumberRange(0, 100_000, "Enter minutes from 0 to 100,000.")],
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    user = auth.current_user()
    if user is None:
        return render_template("dashboard/welcome.html")
    db = database.session()
    tasks = queries.active_tasks(db, user.id)
    attempts = queries.open_and_recent_attempts(db, user.id)
    days = queries.daily_totals(db, user.id, user.timezone)
    chosen = recommendations.Filter.from_preferences(user.preferences)
    open_attempts = [a for a in attempts if a["section"] == "open"]
    running = next((a for a in open_attempts if a["status"] == "started"), None)
    return render_template(
        "dashboard/index.html",
        running=running,
        running_elapsed=(
            minutes_so_far(running["status"], running["resumed_at"], running["minutes_spent"])
            if running
            else None
        ),
        ready=[a for a in open_attempts if a is not running],
        recent=[a for a in attempts if a["section"] == "recent"],
        tasks=tasks,
        quick_start=queries.quick_start(tasks),
        week_minutes=queries.this_week(days, "minutes"),
        week_relief=queries.this_week(days, "relief_score"),
        days=days,
        recommended=recommendations.recommend(tasks, chosen),
        measures=recommendations.MEASURES,
        recommendation_form=RecommendationForm(
            data={"measures": list(chosen.measures), "max_minutes": chosen.max_minutes}
        ),
        pause_form=PauseForm(),
    )


@bp.post("/recommendations")
@auth.login_required
def save_recommendation_filter() -> ResponseReturnValue:
    form = RecommendationForm()
    if not form.validate_on_submit():
        flash(" ".join(e for f in form for e in f.errors) or "Please try again.", "error")
        return redirect(url_for("dashboard.index") + "#recommendations")
    user = auth.user()
    chosen = recommendations.Filter(
        tuple(form.measures.data or recommendations.DEFAULT_MEASURES),
        float(form.max_minutes.data) if form.max_minutes.data is not None else None,
    )
    user.preferences = {**user.preferences, "recommendations": chosen.as_preferences()}
    database.commit()
    flash("Recommendations updated.")
    return redirect(url_for("dashboard.index") + "#recommendations")
