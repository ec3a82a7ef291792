"""Per-step figures, gates, the recommended cap, reports, and the set-cap gate."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from releases import capacity
from releases.capacity import Gates
from releases.capacity import Report
from releases.capacity import Snapshot
from releases.capacity import StepFigures
from releases.capacity import build_report
from releases.capacity import decide_cap


def snap(t: float, users: int, times: dict[int, int], failures: int = 0) -> Snapshot:
    """A cumulative stats-history row: totals since the run began."""
    return Snapshot(t, users, sum(times.values()), failures, times)


# --- per-step figures ---------------------------------------------------------------------


def test_a_step_counts_only_what_happened_between_its_two_snapshots():
    start = snap(100, 20, {10: 500, 50: 400, 900: 100}, failures=7)
    end = snap(160, 20, {10: 1000, 50: 800, 200: 60, 900: 140}, failures=8)
    figures = capacity.step_figures(20, start, end)
    assert figures.requests == 1000
    assert figures.failures == 1
    assert figures.error_rate == pytest.approx(0.001)
    assert figures.rps == pytest.approx(1000 / 60, abs=0.05)
    # 500 at 10 ms, 400 at 50, 60 at 200, 40 at 900 → p50 10, p95 200, p99 900.
    assert (figures.p50_ms, figures.p95_ms, figures.p99_ms) == (10, 200, 900)


def test_slow_requests_of_an_earlier_step_do_not_leak_into_a_later_one():
    """The cumulative p95 would be 900 ms here; the second step's own p95 is 10 ms."""
    rows = [
        snap(0, 20, {}),
        snap(60, 20, {900: 1000}),
        snap(70, 30, {900: 1000, 10: 10}),
        snap(130, 30, {900: 1000, 10: 1010}),
    ]
    figures = capacity.figures_per_step([20, 30], [(rows[0], rows[1]), (rows[2], rows[3])])
    assert [f.p95_ms for f in figures] == [900, 10]
    assert [f.requests for f in figures] == [1000, 1000]


def test_percentiles_use_the_nearest_rank():
    assert capacity.percentile({}, 0.95) is None
    assert capacity.percentile({7: 1}, 0.5) == 7
    hist = {ms: 1 for ms in range(1, 101)}
    assert capacity.percentile(hist, 0.50) == 50
    assert capacity.percentile(hist, 0.95) == 95
    assert capacity.percentile(hist, 0.99) == 99
    assert capacity.percentile({5: 99, 1000: 1}, 0.99) == 5
    assert capacity.percentile({5: 98, 1000: 2}, 0.99) == 1000


def test_snapshots_that_go_backwards_are_refused():
    with pytest.raises(ValueError, match="cumulative"):
        capacity.step_figures(20, snap(0, 20, {10: 5}), snap(60, 20, {10: 3}))
    with pytest.raises(ValueError, match="cumulative"):
        capacity.step_figures(20, snap(0, 20, {10: 5}), snap(60, 20, {20: 9}))
    with pytest.raises(ValueError, match="end after"):
        capacity.step_figures(20, snap(60, 20, {}), snap(60, 20, {}))


def test_a_step_without_requests_has_no_percentiles_and_no_error_rate():
    figures = capacity.step_figures(20, snap(0, 20, {}), snap(60, 20, {}))
    assert figures.requests == 0 and figures.error_rate == 0.0
    assert figures.p95_ms is None


def test_snapshots_round_trip_through_json():
    row = snap(12.5, 40, {3: 2, 400: 1}, failures=1)
    assert Snapshot.from_json(json.loads(json.dumps(row.to_json()))) == row


# --- gates, capacity, recommended cap -------------------------------------------------------


def figures(users: int, p95: int | None = 100, failures: int = 0, requests: int = 10_000):
    return StepFigures(
        users=users,
        users_reached=users,
        seconds=60,
        requests=requests,
        failures=failures,
        rps=requests / 60,
        error_rate=failures / requests if requests else 0.0,
        p50_ms=20,
        p95_ms=p95,
        p99_ms=400,
    )


def test_a_step_passes_at_the_limits_and_fails_just_past_them():
    gates = Gates(p95_ms=300, max_error_rate=0.001)
    assert capacity.judge_step(figures(20, p95=300, failures=10), gates).passed
    slow = capacity.judge_step(figures(20, p95=301), gates)
    assert not slow.passed and slow.reasons == ("p95 301 ms > 300 ms",)
    failing = capacity.judge_step(figures(20, failures=11), gates)
    assert not failing.passed and "error rate" in failing.reasons[0]


def test_a_step_with_no_requests_or_missing_users_fails():
    gates = Gates()
    assert not capacity.judge_step(figures(20, p95=None, requests=0), gates).passed
    short = StepFigures(50, 31, 60, 1000, 0, 16.7, 0.0, 10, 20, 30)
    verdict = capacity.judge_step(short, gates)
    assert not verdict.passed and "only 31 of 50 users" in verdict.reasons[0]


def test_capacity_is_the_highest_step_with_every_step_below_passing():
    gates = Gates()
    verdicts = [
        capacity.judge_step(figures(20), gates),
        capacity.judge_step(figures(30), gates),
        capacity.judge_step(figures(40, p95=900), gates),
        capacity.judge_step(figures(50), gates),  # noise above a failure is not capacity
    ]
    assert capacity.highest_passing(verdicts) == 30
    assert capacity.highest_passing(verdicts[2:]) is None
    assert capacity.highest_passing([]) is None


@pytest.mark.parametrize(
    ("capacity_users", "cap"), [(None, 0), (0, 0), (1, 0), (4, 3), (40, 30), (50, 37), (2500, 1875)]
)
def test_the_recommended_cap_keeps_a_quarter_of_headroom(capacity_users, cap):
    assert capacity.recommended_cap(capacity_users) == cap


DEPLOYED = capacity.Deployed("0.2.0", "0.2.0-20250501T101010Z", "machine-1")


def _host(release=DEPLOYED.release, machine=DEPLOYED.machine_id, after=None):
    """What `invoke loadtest --host` records of the server it measured."""
    return {
        "kind": "host",
        "machine_id": machine,
        "release": release,
        "release_after": after or release,
    }


def _report(
    version="0.2.0",
    p95s=(100, 120, 150, 400),
    date="2025-05-01T10:00:00+00:00",
    target=None,
):
    steps = [20, 30, 40, 50][: len(p95s)]
    report = Report(
        version=version,
        url="http://127.0.0.1:8000",
        commit="abc",
        date=date,
        gates=Gates(),
        steps=[
            capacity.judge_step(figures(u, p95=p), Gates())
            for u, p in zip(steps, p95s, strict=False)
        ],
        target=_host() if target is None else target,
    )
    return report


def test_the_report_says_capacity_and_recommended_cap():
    report = _report()
    assert report.passed and report.capacity == 40 and report.recommended_cap == 30
    lines = capacity.table(report)
    assert lines[-1].startswith("capacity: 40 users pass") and "recommended cap 30" in lines[-1]
    assert "FAIL: p95 400 ms > 300 ms" in lines[4]


def test_the_table_gives_nginx_timing_per_step_when_the_run_has_it():
    report = _report(p95s=(100, 400))
    report.server = [
        {"users": 20, "front_p50_ms": 8, "front_p95_ms": 90, "front_p99_ms": 120,
         "app_p95_ms": 85, "worst_5s_p95_ms": 700, "recovered_after_s": 10.0},
        {"users": 30, "front_p50_ms": 300, "front_p95_ms": 390, "front_p99_ms": 420,
         "app_p95_ms": 388, "worst_5s_p95_ms": 450, "recovered_after_s": None},
    ]  # fmt: skip
    lines = capacity.table(report)
    header = next(i for i, line in enumerate(lines) if line.split()[0] == "front")
    assert lines[header + 1].split() == ["20", "8", "90", "120", "85", "700", "10", "s"]
    assert lines[header + 2].split()[-1] == "never"
    # A run without nginx's log (direct, or a live host) has no such section.
    report.server = [{"users": 20}, {"users": 30}]
    assert not any(line.split()[0] == "front" for line in capacity.table(report))


def test_build_report_judges_every_step_and_fails_steps_the_run_never_reached():
    rows = [snap(0, 20, {}), snap(50, 20, {20: 5000})]
    report = build_report(
        version="0.2.0",
        url="http://x",
        commit="abc",
        steps=[20, 30],
        windows=[(rows[0], rows[1])],
        gates=Gates(),
        now=dt.datetime(2025, 5, 1, 12, 0, 0, 123, tzinfo=dt.timezone.utc),
    )
    assert report.date == "2025-05-01T12:00:00+00:00"
    assert [v.passed for v in report.steps] == [True, False]
    assert report.steps[1].reasons == ("the run stopped before this step",)
    assert report.capacity == 20 and report.recommended_cap == 15


def test_reports_are_written_as_json_and_html_and_read_back(tmp_path):
    report = _report()
    report.machine = {"cpus": 2, "load_avg": [1.0, 2.0, 3.0]}
    json_path, html_path = capacity.write_report(report, tmp_path)
    assert json_path.name == "capacity-0.2.0-20250501T100000.json"
    data = json.loads(json_path.read_text())
    assert data["version"] == "0.2.0" and data["commit"] == "abc"
    assert data["highest_passing_users"] == 40 and data["recommended_cap"] == 30
    assert [s["p95_ms"] for s in data["steps"]] == [100, 120, 150, 400]
    assert data["steps"][3]["passed"] is False
    page = html_path.read_text()
    assert "Capacity 40 users; recommended cap 30" in page and "<td>400</td>" in page
    (loaded,) = capacity.load_reports(tmp_path)
    assert loaded.to_json() == data


def test_unreadable_reports_are_skipped(tmp_path):
    (tmp_path / "capacity-broken.json").write_text("{not json")
    (tmp_path / "capacity-other.json").write_text(json.dumps({"schema": 99}))
    capacity.write_report(_report(), tmp_path)
    assert [r.version for r in capacity.load_reports(tmp_path)] == ["0.2.0"]


# --- the set-cap gate ---------------------------------------------------------------------


def test_raising_within_the_recommended_cap_of_the_deployed_version_is_allowed():
    decision = decide_cap(30, DEPLOYED, 25, [_report()])
    assert decision.allowed and not decision.forced
    assert "within the recommended cap 30" in decision.message
    assert decision.report is not None and decision.report.target["release"] == DEPLOYED.release


def test_a_report_of_another_release_of_this_server_does_not_count():
    older = _report(target=_host(release="0.1.0-20250401T000000Z"))
    decision = decide_cap(30, DEPLOYED, 25, [older])
    assert not decision.allowed
    assert decision.message == (
        "refused: this server's newest capacity report (2025-05-01T10:00:00+00:00) measured "
        "release 0.1.0-20250401T000000Z, but it runs 0.2.0-20250501T101010Z: run `invoke "
        "loadtest --host` against it again"
    )


def test_a_local_run_of_the_same_version_cannot_raise_a_server_cap():
    local = _report(target={"kind": "local", "url": "http://127.0.0.1:8000"})
    decision = decide_cap(30, DEPLOYED, 25, [local])
    assert not decision.allowed
    assert "the only reports of 0.2.0 are of local runs (http://127.0.0.1:8000" in decision.message
    assert "raised only by `invoke loadtest --host`" in decision.message


def test_reports_written_before_load_tests_on_servers_count_as_local(tmp_path):
    data = _report().to_json()
    del data["target"], data["server"]
    (tmp_path / "capacity-old.json").write_text(json.dumps(data))
    (old,) = capacity.load_reports(tmp_path)
    assert old.target == {"kind": "local", "url": "http://127.0.0.1:8000"}
    assert not decide_cap(30, DEPLOYED, 25, [old]).allowed


def test_a_report_of_another_server_does_not_count():
    elsewhere = _report(target=_host(machine="machine-2"))
    decision = decide_cap(30, DEPLOYED, 25, [elsewhere])
    assert not decision.allowed
    assert "no capacity report for the deployed release 0.2.0-20250501T101010Z" in (
        decision.message
    )


def test_a_run_during_which_the_release_changed_does_not_count():
    changed = _report(target=_host(after="0.3.0-20250502T000000Z"))
    decision = decide_cap(30, DEPLOYED, 25, [changed])
    assert not decision.allowed
    assert "the release changed during the load test" in decision.message


def test_above_the_recommended_cap_is_refused():
    decision = decide_cap(31, DEPLOYED, 25, [_report()])
    assert not decision.allowed
    assert "31 users is above the recommended cap 30" in decision.message
    assert "75% of the 40 users" in decision.message


def test_a_failing_report_is_refused():
    decision = decide_cap(26, DEPLOYED, 25, [_report(p95s=(900, 900, 900, 900))])
    assert not decision.allowed and "failed" in decision.message


def test_the_newest_report_of_the_release_decides():
    old_pass = _report(date="2025-05-01T10:00:00+00:00")
    new_fail = _report(p95s=(900,), date="2025-05-02T10:00:00+00:00")
    assert not decide_cap(30, DEPLOYED, 25, [old_pass, new_fail]).allowed
    new_pass = _report(p95s=(100, 100), date="2025-05-03T10:00:00+00:00")
    decision = decide_cap(22, DEPLOYED, 20, [old_pass, new_fail, new_pass])
    assert decision.allowed and decision.report_date == "2025-05-03T10:00:00+00:00"
    assert not decide_cap(23, DEPLOYED, 20, [old_pass, new_fail, new_pass]).allowed


def test_no_report_at_all_is_refused():
    assert not decide_cap(30, DEPLOYED, 25, []).allowed


def test_lowering_or_keeping_the_cap_needs_no_report():
    assert decide_cap(10, DEPLOYED, 25, []).allowed
    assert decide_cap(25, DEPLOYED, 25, []).allowed
    assert not decide_cap(26, DEPLOYED, 25, []).allowed
    assert not decide_cap(1, DEPLOYED, None, []).allowed  # unknown current cap: prove it


def test_force_without_a_reason_is_refused_even_when_the_report_would_allow_it():
    for reason in ("", "   "):
        decision = decide_cap(30, DEPLOYED, 25, [_report()], force=True, reason=reason)
        assert not decision.allowed and "--reason" in decision.message


def test_force_with_a_reason_passes_the_gate_and_says_what_it_overrode():
    decision = decide_cap(500, DEPLOYED, 25, [], force=True, reason="launch day, watched live")
    assert decision.allowed and decision.forced
    assert "no capacity report for the deployed release 0.2.0-20250501T101010Z" in (
        decision.message
    )
    assert decision.message.endswith("launch day, watched live")


def test_a_negative_cap_is_refused():
    assert not decide_cap(-1, DEPLOYED, 25, [_report()], force=True, reason="x").allowed


# --- the server side's pure parts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/srv/tas/releases/0.2.0-20250501T101010Z", "0.2.0"),
        ("/srv/tas/releases/0.2.0-20250501T101010Z/", "0.2.0"),
        ("/srv/tas/releases/1.0.0rc1", "1.0.0rc1"),
        ("releases/0.10.3+local-20250101T000000Z", "0.10.3+local"),
    ],
)
def test_the_deployed_version_is_read_from_the_release_directory(path, version):
    assert capacity.version_from_release(path) == version


def test_max_users_is_replaced_in_place_and_everything_else_is_kept():
    env = "APP_ENV=production\nMAX_USERS=25\n# note\nSECRET_KEY=abc=def\n"
    assert capacity.with_max_users(env, 30) == (
        "APP_ENV=production\nMAX_USERS=30\n# note\nSECRET_KEY=abc=def\n"
    )
    assert capacity.max_users_in(capacity.with_max_users(env, 30)) == 30
    assert capacity.with_max_users("A=1", 5) == "A=1\nMAX_USERS=5\n"
    assert capacity.with_max_users("MAX_USERS=1\nMAX_USERS=2\n", 7) == "MAX_USERS=7\n"
    assert capacity.max_users_in("A=1\n") is None
