"""The analytics page's form: the trend and correlation choices."""

from __future__ import annotations

from wtforms import SelectField
from wtforms.validators import AnyOf

from service.analytics import queries
from service.analytics import report
from service.forms import BaseForm
from service.forms import SelectRenderedOnce

DEFAULTS = report.Choices()
MEASURE_CHOICES = [(key, m.label) for key, m in queries.MEASURES.items()]
MEASURE_MESSAGE = "Choose one of the listed measures."


def _choice(label: str, choices: list[tuple[str, str]], default: str, message: str) -> SelectField:
    # validate_choice=False: AnyOf says what is wrong in words a person understands.
    return SelectField(
        label,
        choices=choices,
        default=default,
        validate_choice=False,
        validators=[AnyOf([key for key, _ in choices], message=message)],
        widget=SelectRenderedOnce(),  # six selects rendered per view: ~40 % of the template
    )


class ChartChoicesForm(BaseForm):
    """The trend and correlation choices; a GET form, so no CSRF token."""

    class Meta:
        csrf = False

    measure = _choice("Measure", MEASURE_CHOICES, DEFAULTS.measure, MEASURE_MESSAGE)
    window = _choice(
        "Period",
        [(str(days), f"Last {days} days") for days in report.WINDOWS],
        str(DEFAULTS.window),
        "Choose 30, 60 or 90 days.",
    )
    aggregation = _choice(
        "Per day",
        [("mean", "Mean"), ("sum", "Sum"), ("median", "Median")],
        DEFAULTS.aggregation,
        "Choose mean, sum or median.",
    )
    x = _choice("X (across)", MEASURE_CHOICES, DEFAULTS.x, MEASURE_MESSAGE)
    y = _choice("Y (up)", MEASURE_CHOICES, DEFAULTS.y, MEASURE_MESSAGE)
    method = _choice(
        "Method",
        [("pearson", "Pearson (linear)"), ("spearman", "Spearman (rank)")],
        DEFAULTS.method,
        "Choose Pearson or Spearman.",
    )

    def choices(self) -> report.Choices:
        """The valid choices, with the default in place of each invalid one."""

        def pick(name: str) -> str:
            field = self[name]
            return str(getattr(DEFAULTS, name)) if field.errors else str(field.data)

        return report.Choices(
            measure=pick("measure"),
            window=int(pick("window")),
            aggregation=pick("aggregation"),
            x=pick("x"),
            y=pick("y"),
            method=pick("method"),
        )
