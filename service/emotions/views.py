from __future__ import annotations

from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import delete

from db.models import Emotion
from service import auth
from service import database
from service.emotions import services
from service.emotions.forms import EmotionForm
from service.forms import ConfirmForm

bp = Blueprint("emotions", __name__, url_prefix="/emotions")


def _render(form: EmotionForm, status: int = 200) -> ResponseReturnValue:
    db = database.session()
    emotions = services.emotion_choices(db, auth.user().id)
    return render_template(
        "emotions/index.html", form=form, emotions=emotions, delete_form=ConfirmForm()
    ), status


@bp.get("")
@auth.login_required
def index() -> ResponseReturnValue:
    return _render(EmotionForm())


@bp.post("")
@auth.login_required
def add() -> ResponseReturnValue:
    form = EmotionForm()
    if not form.validate_on_submit():
        return _render(form, 400)
    name = " ".join((form.name.data or "").split())
    services.ensure_emotions(database.session(), auth.user().id, [name])
    database.commit()
    flash(f"Added “{name}”.")
    return redirect(url_for("emotions.index"))


@bp.post("/<int:emotion_id>/delete")
@auth.login_required
def remove(emotion_id: int) -> ResponseReturnValue:
    result = database.session().execute(
        delete(Emotion).where(Emotion.id == emotion_id, Emotion.user_id == auth.user().id)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        abort(404)
    database.commit()
    flash("Emotion removed (past records no longer mention it).")
    return redirect(url_for("emotions.index"))
