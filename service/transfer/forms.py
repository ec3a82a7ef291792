"""The import forms: the uploaded zip, and the confirmation of its dry run."""

from __future__ import annotations

from flask_wtf.file import FileAllowed
from flask_wtf.file import FileField
from flask_wtf.file import FileRequired
from wtforms import BooleanField
from wtforms import SelectField

from service.forms import BaseForm


class ImportForm(BaseForm):
    archive = FileField(
        "Zip of your old app's data folder",
        validators=[
            FileRequired("Choose a zip file."),
            FileAllowed(["zip"], "Upload a .zip file."),
        ],
    )
    timezone = SelectField("Time zone the old app's times were written in")
    skip_invalid = BooleanField("Import the valid rows and skip the invalid ones")


class ConfirmImportForm(BaseForm):
    skip_invalid = BooleanField("Import the valid rows and skip the invalid ones")
