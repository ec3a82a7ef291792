"""The dashboard's form: what the recommendations are for."""

from __future__ import annotations

from wtforms import DecimalField
from wtforms.validators import NumberRange
from wtforms.validators import Optional

from service import recommendations
from service.forms import BaseForm
from service.forms import CheckboxListField


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
