"""Task groups through the real forms: the Groups page, the task form, and the group
filter of the dashboard, history and analytics (each person's own groups only)."""

from __future__ import annotations

import re

from sqlalchemy import text

from tests.integration.test_attempts import OUTCOME


def _rows(app, sql: str, **params) -> list[tuple]:
    with app.extensions["db_engine"].connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def _group(browser, name: str) -> int:
    response = browser.post("/groups", {"name": name})
    assert response.status_code == 302, response.get_data(as_text=True)
    return browser.latest_id("task_groups")


def _task_names(page: str) -> list[str]:
    return re.findall(r'<span class="task-name">([^<]+)</span>', page)


def test_groups_are_created_renamed_and_deleted_with_clear_messages(browser, app):
    work = _group(browser, "  Work   stuff ")
    page = browser.client.get("/groups").get_data(as_text=True)
    assert '<span class="group-name">Work stuff</span>' in page  # spaces tidied
    refused = {
        "": "Give the group a name.",
        "WORK STUFF": "You already have a group called “WORK STUFF”.",
        "x" * 101: "At most 100 characters.",
    }
    for name, message in refused.items():
        response = browser.post("/groups", {"name": name})
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
    assert _rows(app, "SELECT name FROM task_groups") == [("Work stuff",)]

    home = _group(browser, "Home")
    clash = browser.post(f"/groups/{home}/edit", {"name": "work stuff"})
    assert clash.status_code == 400
    assert "You already have a group called “work stuff”." in clash.get_data(as_text=True)
    # Its own name in other capitals is no clash.
    assert browser.post(f"/groups/{work}/edit", {"name": "WORK STUFF"}).status_code == 302
    assert browser.post(f"/groups/{home}/edit", {"name": "House"}).status_code == 302
    assert _rows(app, "SELECT name FROM task_groups ORDER BY id") == [("WORK STUFF",), ("House",)]

    task = browser.create_task("Taxes", groups=[str(work), str(home)])
    confirm = browser.client.get(f"/groups/{home}/delete").get_data(as_text=True)
    assert "Delete the group “House”?" in confirm
    assert browser.post(f"/groups/{home}/delete").status_code == 302
    # The group went; the task stayed, in its other group.
    assert _rows(app, "SELECT name FROM task_groups") == [("WORK STUFF",)]
    assert _rows(app, "SELECT group_id, task_id FROM task_group_tasks") == [(work, task)]
    assert _rows(app, "SELECT name FROM tasks") == [("Taxes",)]


def test_the_task_form_puts_tasks_in_groups_without_a_new_version(browser, app):
    work, home = _group(browser, "Work"), _group(browser, "Home")
    form = browser.client.get("/tasks/new").get_data(as_text=True)
    assert "<legend>Groups</legend>" in form and ">Work</label>" in form
    task = browser.create_task("Report", groups=[str(work)])
    assert _rows(app, "SELECT group_id FROM task_group_tasks WHERE task_id = :t", t=task) == [
        (work,)
    ]
    edit = browser.client.get(f"/tasks/{task}/edit").get_data(as_text=True)
    assert re.search(rf'checked id="groups-\d" name="groups" type="checkbox" value="{work}"', edit)

    data = {"name": "Report", "kind": "one-time", "default_estimate_minutes": "30"}
    response = browser.post(f"/tasks/{task}/edit", {**data, "groups": [str(home)]})
    assert response.status_code == 302
    assert _rows(app, "SELECT group_id FROM task_group_tasks") == [(home,)]
    assert _rows(app, "SELECT version FROM tasks") == [(1,)]  # groups aren't the task's definition


def test_a_task_form_naming_someone_elses_group_is_refused(browser, other_browser, app):
    theirs = _group(other_browser, "Secret project")
    response = browser.post(
        "/tasks/new", {"name": "Mine", "kind": "one-time", "groups": [str(theirs)]}
    )
    assert response.status_code == 400
    assert "Choose among your own groups" in response.get_data(as_text=True)
    assert "Secret project" not in response.get_data(as_text=True)
    assert _rows(app, "SELECT count(*) FROM tasks") == [(0,)]
    assert _rows(app, "SELECT count(*) FROM task_group_tasks") == [(0,)]


def _complete(browser, task_id: int, relief: str) -> int:
    browser.post(f"/tasks/{task_id}/quick-initialize")
    attempt = browser.latest_id("attempts")
    response = browser.post(f"/attempts/{attempt}/complete", {**OUTCOME, "actual_relief": relief})
    assert response.status_code == 302
    return attempt


def _setup_two_groups(browser) -> tuple[int, int, int, int]:
    work, home = _group(browser, "Work"), _group(browser, "Home")
    report = browser.create_task("Report", groups=[str(work)])
    dishes = browser.create_task("Dishes", groups=[str(home)])
    return work, home, report, dishes


def test_the_dashboard_shows_one_group_when_asked(browser, app):
    work, home, report, dishes = _setup_two_groups(browser)
    browser.create_task("Ungrouped")
    _complete(browser, report, "80")
    _complete(browser, dishes, "20")
    browser.post(f"/tasks/{dishes}/quick-initialize")  # ready, in Home

    everything = browser.client.get("/").get_data(as_text=True)
    assert _task_names(everything) == ["Dishes", "Report", "Ungrouped"]
    assert f'<option value="{work}">Work</option>' in everything

    response = browser.client.get(f"/?group={work}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _task_names(page) == ["Report"]
    assert f'<option value="{work}" selected>Work</option>' in page
    assert "Showing the group “Work”" in page
    recent = page.split('id="recent-heading"', 1)[1]
    assert "Report" in recent and "Dishes" not in recent
    ready = page.split('id="ready-heading"', 1)[1].split("</section>", 1)[0]
    assert "Dishes" not in ready
    assert "Dishes" in browser.client.get(f"/?group={home}").get_data(as_text=True)

    # Renaming the group shows at once on the (cached) dashboard.
    browser.post(f"/groups/{work}/edit", {"name": "Office"})
    assert f'<option value="{work}">Office</option>' in browser.client.get("/").get_data(
        as_text=True
    )


def test_history_and_analytics_show_one_group_when_asked(browser, app):
    work, _home, report, dishes = _setup_two_groups(browser)
    mine = _complete(browser, report, "80")
    _complete(browser, dishes, "20")
    _complete(browser, dishes, "30")

    history = browser.client.get(f"/history?group={work}").get_data(as_text=True)
    assert f"/attempts/{mine}" in history
    assert history.count('href="/attempts/') == 1
    assert f'<option selected value="{work}">Work</option>' in history or (
        f'<option value="{work}" selected>Work</option>' in history
    )

    everything = browser.client.get("/analytics").get_data(as_text=True)
    assert "3 completed of 3 finished" in everything
    grouped = browser.client.get(f"/analytics?group={work}")
    page = grouped.get_data(as_text=True)
    assert grouped.status_code == 200
    assert "1 completed of 1 finished" in page
    assert "Showing the group “Work” only." in page
    # The chart choice forms keep the group.
    assert page.count(f'<input type="hidden" name="group" value="{work}">') == 2


def test_someone_elses_or_a_made_up_group_gets_a_message_and_nothing_of_theirs(
    browser, other_browser, app
):
    theirs = _group(other_browser, "Secret project")
    their_task = other_browser.create_task("Their secret task", groups=[str(theirs)])
    _complete(other_browser, their_task, "90")
    mine = _group(browser, "Mine")
    my_task = browser.create_task("My task", groups=[str(mine)])
    _complete(browser, my_task, "50")

    for asked in (str(theirs), "abc", "99999999999999999999999", "-1"):
        for path in ("/", "/history", "/analytics"):
            response = browser.client.get(f"{path}?group={asked}")
            page = response.get_data(as_text=True)
            assert response.status_code == 400, (path, asked)
            assert "Choose one of your groups." in page, (path, asked)
            assert "Secret project" not in page and "Their secret task" not in page
    # The whole (own) dashboard and analytics are shown instead.
    page = browser.client.get(f"/?group={theirs}").get_data(as_text=True)
    assert _task_names(page) == ["My task"]
    page = browser.client.get(f"/analytics?group={theirs}").get_data(as_text=True)
    assert "1 completed of 1 finished" in page
