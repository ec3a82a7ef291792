"""The emotions page's form: a new emotion word."""

from __future__ import annotations

from wtforms import StringField
from wtforms.validators import DataRequired
from wtforms.validators import Length

from db.models import EMOTION_NAME_MAX
from service.forms import BaseForm


class EmotionForm(BaseForm):
    name = StringField(
        "New emotion",
        validators=[DataRequired("Type an emotion word."), Length(max=EMOTION_NAME_MAX)],
    )
