"""The Groups page's forms: a new group's name, and a group's new name."""

from __future__ import annotations

from wtforms import StringField
from wtforms.validators import DataRequired
from wtforms.validators import Length
from wtforms.validators import ValidationError

from db.models import GROUP_NAME_MAX
from service import auth
from service import database
from service.forms import BaseForm
from service.groups import services


def _name_field(label: str) -> StringField:
    return StringField(
        label,
        validators=[
            DataRequired("Give the group a name."),
            Length(max=GROUP_NAME_MAX, message=f"At most {GROUP_NAME_MAX} characters."),
        ],
        filters=[lambda value: " ".join(value.split()) if isinstance(value, str) else value],
        render_kw={"maxlength": GROUP_NAME_MAX},
    )


class GroupForm(BaseForm):
    name = _name_field("New group")

    # The group being renamed (none for a new one): its own name is no clash.
    group_id: int | None = None

    def validate_name(self, field: StringField) -> None:
        if not field.data or "\x00" in field.data:  # refused by BaseForm, with its message
            return
        db = database.session()
        if services.name_taken(db, auth.user().id, field.data, self.group_id):
            raise ValidationError(f"You already have a group called “{field.data}”.")


class RenameForm(GroupForm):
    name = _name_field("Name")
