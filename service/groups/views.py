"""The Groups page (``/groups``): create, rename and delete a person's task groups.

Tasks are put in groups on the task form. Every form is a POST with its CSRF token; a
group id that isn't the person's (another person's, a deleted one, a made-up one) is a 404
and changes nothing; an empty, too long or already used name is refused with a message by
the field.
"""

from __future__ import annotations

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import delete

from db.models import TaskGroup
from service import auth
from service import database
from service.forms import ConfirmForm
from service.forms import render_form
from service.groups import services
from service.groups.forms import GroupForm
from service.groups.forms import RenameForm

bp = Blueprint("groups", __name__, url_prefix="/groups")


def _render_index(form: GroupForm) -> ResponseReturnValue:
    groups = services.groups_with_counts(database.session(), auth.user().id)
    return render_form("groups/index.html", form, groups=groups)


@bp.get("")
@auth.login_required
def index() -> ResponseReturnValue:
    return _render_index(GroupForm())


@bp.post("")
@auth.login_required
def add() -> ResponseReturnValue:
    form = GroupForm()
    if not form.validate_on_submit():
        return _render_index(form)
    group = services.create_group(database.session(), auth.user().id, form.name.data)
    if group is None:  # the same name, created in another tab a moment ago
        form.name.errors = [f"You already have a group called “{form.name.data}”."]
        return _render_index(form)
    database.commit()
    flash(f"Created the group “{group.name}”. Put tasks in it on their task forms.")
    return redirect(url_for("groups.index"))


@bp.route("/<int:group_id>/edit", methods=["GET", "POST"])
@auth.login_required
def edit(group_id: int) -> ResponseReturnValue:
    db = database.session()
    group = services.get_group_or_404(db, auth.user().id, group_id)
    form = RenameForm(obj=group)
    form.group_id = group.id
    if form.validate_on_submit():
        old = group.name
        group.name = form.name.data
        database.commit()
        flash(f"Renamed “{old}” to “{group.name}”.")
        return redirect(url_for("groups.index"))
    return render_form("groups/edit.html", form, group=group)


@bp.route("/<int:group_id>/delete", methods=["GET", "POST"])
@auth.login_required
def remove(group_id: int) -> ResponseReturnValue:
    """Delete a group after a confirmation; its tasks stay (in their other groups too)."""
    db = database.session()
    group = services.get_group_or_404(db, auth.user().id, group_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        name = group.name
        db.execute(
            delete(TaskGroup).where(TaskGroup.id == group.id, TaskGroup.user_id == group.user_id)
        )
        database.commit()
        flash(f"Deleted the group “{name}”; its tasks are still there.")
        return redirect(url_for("groups.index"))
    return render_form("groups/delete.html", form, group=group)
