from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint
from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from service import auth
from service import database
from service.accounts import services
from service.accounts.forms import DeleteAccountForm
from service.accounts.forms import SigninForm
from service.accounts.forms import SignupForm
from service.accounts.forms import TimezoneForm
from service.emotions.services import STARTER_EMOTIONS
from service.emotions.services import ensure_emotions
from service.forms import ConfirmForm
from service.security import AUTH_LIMITS
from service.security import limiter

bp = Blueprint("accounts", __name__)
# Set by the live site's nginx (never passed on from a client) to the name of the load test
# whose key a request carries: see services.create_user and releases/templates/nginx-site.conf.
LOAD_RUN_HEADER = "X-TAS-Load-Run"


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a person to another host after sign-in."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/"):
            if not target.startswith("//") and "\\" not in target:
                return target
    return url_for("dashboard.index")


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMITS, methods=["POST"])
def signup() -> ResponseReturnValue:
    db = database.session()
    max_users = current_app.config["MAX_USERS"]
    form = SignupForm()
    suggestions: list[str] = []
    if form.validate_on_submit():
        try:
            user, key = services.create_user(
                db,
                form.username.data or "",
                form.timezone.data or "UTC",
                max_users,
                load_run=request.headers.get(LOAD_RUN_HEADER),
            )
        except services.SignupClosed:
            pass
        except services.UsernameTaken as taken:
            suggestions = taken.suggestions
            form.username.errors = [
                f"“{form.username.data}” is taken (names are the same whatever the capitals)."
            ]
        else:
            ensure_emotions(db, user.id, STARTER_EMOTIONS)
            auth.start_session(user.id)
            database.commit()
            return render_template("accounts/key.html", key=key, new_account=True)
    is_open = services.signup_open(db, max_users) or (
        services.live_load_run(db, request.headers.get(LOAD_RUN_HEADER)) is not None
    )
    return render_template(
        "accounts/signup.html", form=form, suggestions=suggestions, signup_open=is_open
    )


@bp.route("/signin", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMITS, methods=["POST"])
def signin() -> ResponseReturnValue:
    form = SigninForm()
    if form.validate_on_submit():
        user = services.verify_signin(
            database.session(), form.username.data or "", form.key.data or ""
        )
        if user is not None:
            auth.start_session(user.id)
            database.commit()
            return redirect(_safe_next(request.args.get("next")))
        form.key.errors = ["That username and sign-in key don't match."]
    return render_template("accounts/signin.html", form=form)


@bp.post("/signout")
def signout() -> ResponseReturnValue:
    auth.end_session()
    database.commit()
    flash("You are signed out.")
    return redirect(url_for("accounts.signin"))


def _timezone_form() -> TimezoneForm:
    form = TimezoneForm(timezone=auth.user().timezone)
    form.timezone.choices = sorted(services.time_zones())
    return form


@bp.get("/account")
@auth.login_required
def account() -> ResponseReturnValue:
    return render_template(
        "accounts/account.html",
        timezone_form=_timezone_form(),
        key_form=ConfirmForm(),
        delete_form=DeleteAccountForm(),
    )


@bp.post("/account/timezone")
@auth.login_required
def change_timezone() -> ResponseReturnValue:
    form = _timezone_form()
    if not form.validate_on_submit():
        return render_template(
            "accounts/account.html",
            timezone_form=form,
            key_form=ConfirmForm(),
            delete_form=DeleteAccountForm(),
        ), 400
    auth.user_row().timezone = form.timezone.data or "UTC"
    database.commit()
    flash(f"Times are now shown in {form.timezone.data}.")
    return redirect(url_for("accounts.account"))


@bp.post("/account/key")
@auth.login_required
@limiter.limit(AUTH_LIMITS)
def regenerate_key() -> ResponseReturnValue:
    user = auth.user_row()
    key = services.regenerate_key(database.session(), user)
    # Whoever signed in with the old key (or copied a cookie) is out; this browser signs
    # back in with a fresh session id.
    auth.end_all_sessions(user.id)
    auth.start_session(user.id)
    database.commit()
    return render_template("accounts/key.html", key=key, new_account=False)


@bp.post("/account/signout-everywhere")
@auth.login_required
@limiter.limit(AUTH_LIMITS)
def signout_everywhere() -> ResponseReturnValue:
    auth.end_all_sessions(auth.user().id)
    database.commit()
    flash("You are signed out on every device, this one included.")
    return redirect(url_for("accounts.signin"))


@bp.post("/account/delete")
@auth.login_required
def delete_account() -> ResponseReturnValue:
    user = auth.user()
    form = DeleteAccountForm()
    if form.validate_on_submit() and (form.confirm.data or "").lower() == user.username.lower():
        services.delete_account(database.session(), user.id)
        auth.end_session()
        database.commit()
        services.account_deleted.send(current_app, user_id=user.id)
        flash("Your account and all its data are deleted.")
        return redirect(url_for("accounts.signup"))
    if not form.confirm.errors:
        form.confirm.errors = ["That isn't your username; nothing was deleted."]
    return render_template(
        "accounts/account.html",
        timezone_form=_timezone_form(),
        key_form=ConfirmForm(),
        delete_form=form,
    ), 400
