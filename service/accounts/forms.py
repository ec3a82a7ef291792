from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from markupsafe import Markup
from wtforms import Field
from wtforms import HiddenField
from wtforms import PasswordField
from wtforms import SelectField
from wtforms import StringField
from wtforms.validators import DataRequired
from wtforms.validators import Length
from wtforms.validators import Regexp
from wtforms.widgets import Select

from db.models import USERNAME_MAX
from service.accounts.services import USERNAME_PATTERN
from service.forms import BaseForm

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


class TimezoneForm(BaseForm):
    timezone = SelectField("Time zone", validators=[DataRequired()], widget=SelectRenderedOnce())


class DeleteAccountForm(BaseForm):
    confirm = StringField(
        "Type your username to confirm",
        validators=[DataRequired("Type your username to confirm."), Length(max=USERNAME_MAX)],
        render_kw={"autocomplete": "off"},
    )
