"""nginx's timing of a capacity run per step: the front's figures and a burst's recovery."""

from __future__ import annotations

from releases.front_log import FRONT_LOG
from releases.front_log import LOG_FORMAT
from releases.front_log import Entry
from releases.front_log import parse
from releases.front_log import percentile
from releases.front_log import step_latency
from releases.remote import render


def test_the_site_logs_in_the_format_and_place_the_load_test_reads() -> None:
    site = render(
        "nginx-site.conf",
        domain="tas.test",
        acme_webroot="/a",
        app_root="/srv/tas",
        max_upload_mb=1,
        load_keys_dir="/k",
    )
    assert f"log_format tas_timed '{LOG_FORMAT}';" in site
    https = site[site.index("listen 443") :]
    assert f"access_log {FRONT_LOG} tas_timed;" in https
    # Debian's own access log keeps this site's requests too.
    assert "access_log /var/log/nginx/access.log;" in https


def test_the_log_lines_nginx_writes_are_read_and_others_skipped() -> None:
    lines = [
        "1764892800.123 0.045 0.040 200",
        "1764892800.200 0.002 - 200",  # nginx answered alone (a static file)
        "1764892800.300 0.031 0.010, 0.020 502",  # two upstream tries
        "1764892800.400 0.031 0.010 : 0.005 200",  # an internal redirect
        "not a log line",
        "",
    ]
    entries = parse(lines)
    assert [e.status for e in entries] == [200, 200, 502, 200]
    assert entries[0] == Entry(1764892800.123, 45.0, 40.0, 200)
    assert entries[1].app_ms is None
    assert round(entries[2].app_ms or 0) == 30
    assert round(entries[3].app_ms or 0) == 15


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.5) == 50
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.95) is None


def _snapshots(start: float, settle: float, length: float) -> list[dict]:
    return [
        {"step": 0, "opens": True, "time": start + settle},
        {"step": 0, "opens": False, "time": start + length},
    ]


def _requests(start: float, until: float, ms: float, every: float = 0.1) -> list[Entry]:
    count = int((until - start) / every)
    return [Entry(start + i * every, ms, ms - 1, 200) for i in range(count)]


def test_a_burst_that_clears_within_the_settle_time_is_seen_recovering() -> None:
    # The step starts at 1000: 12 s of slow answers while people arrive, then fast ones.
    entries = _requests(1000, 1012, 900.0) + _requests(1012, 1060, 40.0)
    figures = step_latency(entries, _snapshots(1000, 20, 60), settle_seconds=20, gate_ms=300)[0]
    assert figures["recovered_after_s"] == 15  # the 10-15 s bucket still held slow ones
    assert figures["worst_5s_p95_ms"] == 900
    # The measured window (20-60 s) saw only the fast answers.
    assert figures["front_p95_ms"] == 40 and figures["app_p95_ms"] == 39
    assert figures["front_requests"] == 400


def test_a_step_that_never_gets_back_under_the_gate_says_so() -> None:
    entries = _requests(1000, 1030, 40.0) + _requests(1030, 1060, 500.0)
    figures = step_latency(entries, _snapshots(1000, 20, 60), settle_seconds=20, gate_ms=300)[0]
    assert figures["recovered_after_s"] is None
    assert figures["front_p95_ms"] == 500


def test_a_step_fast_from_its_start_recovered_at_once_and_open_windows_are_left_out() -> None:
    entries = _requests(1000, 1060, 25.0)
    snapshots = [*_snapshots(1000, 20, 60), {"step": 1, "opens": True, "time": 1080}]
    figures = step_latency(entries, snapshots, settle_seconds=20, gate_ms=300)
    assert list(figures) == [0]
    assert figures[0]["recovered_after_s"] == 0
