from __future__ import annotations

from wtforms import HiddenField
from wtforms import PasswordField
from wtforms import SelectField
from wtforms import StringField
from wtforms.validators import DataRequired
from wtforms.validators import Length
from wtforms.validators import Regexp

from db.models import USERNAME_MAX
from service.accounts.services import USERNAME_PATTERN
from service.forms import BaseForm
from service.forms import SelectRenderedOnce

USERNAME_HELP = (
    f"1–{USERNAME_MAX} characters: letters, digits, and . _ - (not first). "
    "Capitals don't make a different name."
)


def username_field() -> StringField:
    return StringField(
        "Username",
        validators=[
            DataRequired("Choose a username."),
            Length(max=USERNAME_MAX, message=f"At most {USERNAME_MAX} characters."),
            Regexp(USERNAME_PATTERN, message="Use letters, digits, and . _ - only."),
        ],
        description=USERNAME_HELP,
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )


class SignupForm(BaseForm):
    username = username_field()
    # Filled in by the browser (static/js/app.js, data-detect-timezone); settings can change it.
    timezone = HiddenField("Time zone", validators=[Length(max=64)])


class SigninForm(BaseForm):
    username = username_field()
    key = PasswordField(
        "Sign-in key",
        validators=[DataRequired("Enter the sign-in key you were given."), Length(max=100)],
        # The key is this account's password as far as password managers go: they fill
        # it in here, next to the username field.
        render_kw={"autocomplete": "current-password", "spellcheck": "false"},
    )


class TimezoneForm(BaseForm):
    timezone = SelectField("Time zone", validators=[DataRequired()], widget=SelectRenderedOnce())


class DeleteAccountForm(BaseForm):
    confirm = StringField(
        "Type your username to confirm",
        validators=[DataRequired("Type your username to confirm."), Length(max=USERNAME_MAX)],
        render_kw={"autocomplete": "off"},
    )
