"""Emotion intensities (0–100) through the real forms, and how analytics compares them."""

from __future__ import annotations

import re

from sqlalchemy import text

from tests.integration.test_attempts import OUTCOME
from tests.integration.test_attempts import PREDICTION


def _emotion_ids(app, user: str = "alice") -> dict[str, int]:
    with app.extensions["db_engine"].connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.name, e.id FROM emotions e JOIN users u ON u.id = e.user_id"
                " WHERE u.username = :u"
            ),
            {"u": user},
        )
        return {name: emotion_id for name, emotion_id in rows}


def _felt(app) -> list[tuple[str, str, int | None]]:
    with app.extensions["db_engine"].connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.name, ae.phase, ae.intensity FROM attempt_emotions ae"
                " JOIN emotions e ON e.id = ae.emotion_id ORDER BY ae.phase DESC, e.name"
            )
        )
        return [tuple(row) for row in rows]


def _prediction(ids: dict[str, int], **chosen: str) -> dict:
    data: dict = {**PREDICTION, "new_emotions": ""}
    data["emotions"] = [str(ids[name]) for name in chosen]
    for name, intensity in chosen.items():
        data[f"intensities-{ids[name]}"] = intensity
    return data


def test_each_chosen_emotion_keeps_its_intensity_before_and_after(browser, app):
    task_id = browser.create_task("Tax return")
    ids = _emotion_ids(app)
    form = browser.client.get(f"/tasks/{task_id}/initialize").get_data(as_text=True)
    # Each emotion has its own labelled number input next to its checkbox.
    assert f'<label class="intensity-label" for="intensities-{ids["Anxious"]}">' in form
    assert (
        f'<span class="visually-hidden" id="intensities-{ids["Anxious"]}-emotion">of Anxious'
        in form
    )

    response = browser.post(
        f"/tasks/{task_id}/initialize", _prediction(ids, Anxious="80", Tired="")
    )
    assert response.status_code == 302
    attempt_id = browser.latest_id("attempts")
    assert _felt(app) == [("Anxious", "before", 80), ("Tired", "before", None)]

    # The prediction form shows them again, and changing them replaces them.
    again = browser.client.get(f"/attempts/{attempt_id}/prediction").get_data(as_text=True)
    assert re.search(rf'id="intensities-{ids["Anxious"]}"[^>]*value="80"', again)
    browser.post(f"/attempts/{attempt_id}/prediction", _prediction(ids, Anxious="70"))
    assert _felt(app) == [("Anxious", "before", 70)]

    outcome = {**OUTCOME, "emotions": [str(ids["Anxious"]), str(ids["Calm"])]}
    outcome[f"intensities-{ids['Anxious']}"] = "20"
    outcome[f"intensities-{ids['Calm']}"] = "90"
    assert browser.post(f"/attempts/{attempt_id}/complete", outcome).status_code == 302
    assert _felt(app) == [
        ("Anxious", "before", 70),
        ("Anxious", "after", 20),
        ("Calm", "after", 90),
    ]
    page = browser.client.get(f"/attempts/{attempt_id}").get_data(as_text=True)
    assert "Anxious (70)" in page and "Calm (90)" in page


def test_bad_intensities_get_a_message_and_change_nothing(browser, app):
    task_id = browser.create_task("Tax return")
    ids = _emotion_ids(app)
    cases = {
        "101": "Intensity of “Anxious”: enter a whole number from 0 to 100.",
        "-1": "Intensity of “Anxious”: enter a whole number from 0 to 100.",
        "4.5": "Intensity of “Anxious”: enter a whole number from 0 to 100.",
        "lots": "Intensity of “Anxious”: enter a whole number from 0 to 100.",
        "9" * 400: "Intensity of “Anxious”: enter a whole number from 0 to 100.",
    }
    for value, message in cases.items():
        response = browser.post(f"/tasks/{task_id}/initialize", _prediction(ids, Anxious=value))
        assert response.status_code == 400, value
        assert message in response.get_data(as_text=True)

    # An intensity for an emotion that isn't ticked would be lost: it is refused instead.
    data = _prediction(ids, Anxious="50")
    data["emotions"] = []
    response = browser.post(f"/tasks/{task_id}/initialize", data)
    assert response.status_code == 400
    assert "You gave “Anxious” an intensity without ticking it" in response.get_data(as_text=True)
    with app.extensions["db_engine"].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM attempts")).scalar_one() == 0


def test_intensities_are_for_the_persons_own_emotions_only(browser, other_browser, app):
    task_id = browser.create_task("Tax return")
    theirs = _emotion_ids(app, "mallory")["Anxious"]
    data = {**PREDICTION, "new_emotions": "", "emotions": [str(theirs)]}
    data[f"intensities-{theirs}"] = "50"
    response = browser.post(f"/tasks/{task_id}/initialize", data)
    assert response.status_code == 400
    assert _felt(app) == []


def _complete(browser, task_id: int, ids: dict[str, int], before: dict, after: dict) -> None:
    browser.post(f"/tasks/{task_id}/initialize", _prediction(ids, **before))
    attempt_id = browser.latest_id("attempts")
    outcome = {**OUTCOME, "emotions": [str(ids[name]) for name in after]}
    for name, intensity in after.items():
        outcome[f"intensities-{ids[name]}"] = intensity
    assert browser.post(f"/attempts/{attempt_id}/complete", outcome).status_code == 302


def _emotion_rows(page: str) -> dict[str, list[str]]:
    section = page.split('id="emotions-heading"', 1)[1].split("</section>", 1)[0]
    rows = {}
    for name, cells in re.findall(r'<th scope="row">([^<]+)</th>(.*?)</tr>', section, re.S):
        rows[name] = [
            re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", cells, re.S)
        ]
    return rows


def test_analytics_compares_each_emotions_intensity_before_and_after(browser, app):
    task_id = browser.create_task("Tax return")
    ids = _emotion_ids(app)
    _complete(browser, task_id, ids, {"Anxious": "80"}, {"Anxious": "20", "Calm": "70"})
    _complete(browser, task_id, ids, {"Anxious": "60", "Tired": ""}, {"Anxious": "30"})
    # An open attempt's emotions are not counted yet.
    browser.post(f"/tasks/{task_id}/initialize", _prediction(ids, Anxious="100"))

    page = browser.client.get("/analytics").get_data(as_text=True)
    rows = _emotion_rows(page)
    # Emotion: attempts, before (n), after (n), change; the most frequent first.
    assert rows == {
        "Anxious": ["2", "70.0 (2)", "25.0 (2)", "-45.0"],
        "Calm": ["1", "—", "70.0 (1)", "—"],
        "Tired": ["1", "—", "—", "—"],
    }
    assert list(rows) == ["Anxious", "Calm", "Tired"]
    # The chart draws the same means: a bar per emotion before and after, titled with it.
    chart = page.split('data-chart="emotions-chart"', 1)[1].split("</svg>", 1)[0]
    assert "<title>Anxious, before: 70</title>" in chart
    assert "<title>Anxious, after: 25</title>" in chart
    assert "<title>Calm, after: 70</title>" in chart and "Calm, before" not in chart

    # The cached page follows a change to a finished attempt's intensities at once.
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(text("UPDATE attempt_emotions SET intensity = 0 WHERE phase = 'after'"))
    rows = _emotion_rows(browser.client.get("/analytics").get_data(as_text=True))
    assert rows["Anxious"] == ["2", "70.0 (2)", "0.0 (2)", "-70.0"]


def test_fixing_a_finished_attempt_corrects_its_intensities(browser, app):
    task_id = browser.create_task("Tax return")
    ids = _emotion_ids(app)
    _complete(browser, task_id, ids, {"Anxious": "80"}, {"Anxious": "20"})
    attempt_id = browser.latest_id("attempts")
    with app.extensions["db_engine"].begin() as conn:  # begun an hour before it was completed
        conn.execute(
            text(
                "UPDATE attempts SET initialized_at = initialized_at - interval '1 hour',"
                " started_at = started_at - interval '1 hour'"
            )
        )
    form = browser.client.get(f"/attempts/{attempt_id}/outcome").get_data(as_text=True)
    assert re.search(rf'id="intensities-{ids["Anxious"]}"[^>]*value="20"', form)

    day = re.search(r'name="completed_date"[^>]*value="([^"]+)"', form)
    time = re.search(r'name="completed_time"[^>]*value="([^"]+)"', form)
    assert day and time
    fixed = {**OUTCOME, "completed_date": day.group(1), "completed_time": time.group(1)}
    fixed["emotions"] = [str(ids["Anxious"]), str(ids["Calm"])]
    fixed[f"intensities-{ids['Anxious']}"] = "120"
    refused = browser.post(f"/attempts/{attempt_id}/outcome", fixed)
    assert refused.status_code == 400
    assert "Intensity of “Anxious”: enter a whole number" in refused.get_data(as_text=True)
    assert _felt(app) == [("Anxious", "before", 80), ("Anxious", "after", 20)]

    fixed[f"intensities-{ids['Anxious']}"] = "5"
    fixed[f"intensities-{ids['Calm']}"] = "60"
    response = browser.post(f"/attempts/{attempt_id}/outcome", fixed)
    errors = re.findall(r'role="alert">([^<]+)<', response.get_data(as_text=True))
    assert response.status_code == 302, errors
    assert _felt(app) == [("Anxious", "before", 80), ("Anxious", "after", 5), ("Calm", "after", 60)]
    rows = _emotion_rows(browser.client.get("/analytics").get_data(as_text=True))
    assert rows["Anxious"] == ["1", "80.0 (1)", "5.0 (1)", "-75.0"]
