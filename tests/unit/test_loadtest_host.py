"""The server's figures per step of `invoke loadtest --host`, from the sampler's counters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from releases.loadtest import LoadSettings
from releases.loadtest_host import app_cpu_per_request
from releases.loadtest_host import before_figures
from releases.loadtest_host import nginx_connections_problem
from releases.loadtest_host import server_figures

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20


def _samples(busy_from: float) -> list[dict]:
    """Every 2 s: 2 CPUs at 100 jiffies/s; idle until ``busy_from``, then 3/4 busy (1/100 of
    it stolen); the app uses half a core while busy, PostgreSQL a quarter; memory grows."""
    rows: list[dict] = [{"header": {"cpus": 2, "clock_ticks": 100}}]
    busy = idle = steal = 0
    app = db = 0
    for n in range(0, 51):
        t = 1000.0 + 2 * n
        rows.append(
            {
                "time": t,
                "cpu": {"user": busy, "idle": idle, "steal": steal},
                "memory": {"MemTotal": 1000 * MIB, "MemAvailable": (900 - n) * MIB},
                "load1": n / 10,
                "units": {
                    "app": {"cpu_usec": app, "memory_bytes": (100 + n) * MIB},
                    "postgresql": {"cpu_usec": db, "memory_bytes": 0},
                    "nginx": {"cpu_usec": 0, "memory_bytes": 0},
                },
            }
        )
        if t >= busy_from:
            busy, idle, steal, app, db = (
                busy + 298,
                idle + 100,
                steal + 2,
                app + 1_000_000,
                db + 500_000,
            )
        else:
            idle += 400
    return rows


def test_each_step_gets_the_server_cpu_memory_and_load_of_its_window():
    samples = _samples(busy_from=1010)
    snapshots = [
        {"step": 0, "opens": True, "time": 1020.0},
        {"step": 0, "opens": False, "time": 1060.0},
        {"step": 1, "opens": True, "time": 1070.0},
        {"step": 1, "opens": False, "time": 1500.0},  # past the last sample: not covered
    ]
    first, second = server_figures(samples, snapshots, [10, 25])
    assert first["users"] == 10 and first["seconds"] == 40
    assert first["cpu_busy"] == 75.0 and first["cpu_steal"] == 0.5
    assert first["app_cpu"] == 50.0 and first["db_cpu"] == 25.0
    assert first["nginx_cpu"] is None  # a unit that used nothing says nothing
    assert first["mem_used_mib"] == 100 + 30 and first["app_mem_mib"] == 100 + 30
    assert first["load1_max"] == 3.0
    assert second == {"users": 25}
    # Half a core for 40 s over 400 requests: 50 ms of the app's CPU each.
    assert app_cpu_per_request(first, 400) == 50.0
    assert app_cpu_per_request(first, 0) is None and app_cpu_per_request(second, 400) is None


def test_the_server_before_the_load_is_reported_apart():
    samples = _samples(busy_from=1010)
    quiet = before_figures(samples, until=1008)
    assert quiet is not None and quiet["cpu_busy"] == 0 and quiet["cpu_steal"] == 0
    assert before_figures(samples, until=1000) is None  # one sample is no interval
    assert before_figures([], until=2000) is None


def _sample(folder: Path, *arguments: str) -> list[dict]:
    """Run the sampler as a server runs it (``load_sampler.py OUT INTERVAL [APP_PID]``)
    until it has written a header and three samples; its lines, read back."""
    out = folder / "samples.jsonl"
    sampler = ROOT / "releases" / "scripts" / "load_sampler.py"
    process = subprocess.Popen([sys.executable, "-I", str(sampler), str(out), *arguments])
    try:
        for _ in range(200):
            if out.exists() and len(out.read_text().splitlines()) >= 4:
                break
            subprocess.run(["sleep", "0.05"], check=True)
    finally:
        process.terminate()
        process.wait(timeout=10)
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_the_sampler_runs_on_the_standard_library_and_writes_counters(tmp_path):
    """What the server's python3 runs: a header line, then one sample per interval."""
    lines = _sample(tmp_path, "0.1")
    assert lines[0]["header"]["cpus"] >= 1
    sample = lines[1]
    assert set(sample["cpu"]) >= {"user", "idle", "steal"}
    assert sample["memory"]["MemTotal"] > sample["memory"]["MemAvailable"] > 0
    assert lines[2]["time"] > lines[1]["time"]


class _Unreachable:
    """A server whose connection is gone."""

    def sudo(self, command: str, **_: object) -> object:
        raise OSError("connection reset by peer")


def test_a_clean_up_that_cannot_reach_the_server_says_what_is_left_and_who_removes_it():
    from releases.loadtest_host import Run
    from releases.loadtest_host import _clean_up

    said: list[str] = []
    run = Run("r1abcd", "s", "k", "tas.example", "0.1.0-x", "0.1.0", "m", 600)
    assert _clean_up(_Unreachable(), run, said.append) is False  # type: ignore[arg-type]
    # Set-up stopped before the timer: no promise of a timer that may not exist.
    assert "before the server confirmed the safety timer" in said[-1]
    assert "load_cleanup.sh r1abcd" in said[-1] and "timer tas-load" not in said[-1]
    run.timer_started = True
    assert _clean_up(_Unreachable(), run, said.append) is False  # type: ignore[arg-type]
    assert "the server's timer tas-load-cleanup-r1abcd removes the key" in said[-1]


def test_on_one_machine_the_sampler_tells_the_app_and_the_load_generator_apart(tmp_path):
    """A benchmark runs gunicorn as whoever starts it: given its pid, that process and its
    children are the app; a locust process on the machine is the load generator. Each
    part's CPU goes to it, so a report shows what the generator took from the server."""
    spin = "import time\nend = time.time() + 20\nwhile time.time() < end: pass"
    app = subprocess.Popen([sys.executable, "-c", spin])
    generator = subprocess.Popen([sys.executable, "-c", spin, "-m", "locust"])
    try:
        samples = _sample(tmp_path, "0.3", str(app.pid))[1:]
    finally:
        for process in (app, generator):
            process.terminate()
            process.wait(timeout=10)
    first, last = samples[0]["units"], samples[-1]["units"]
    assert last["app"]["cpu_usec"] > first["app"]["cpu_usec"]
    assert last["generator"]["cpu_usec"] > first["generator"]["cpu_usec"]
    figures = server_figures(
        samples,
        [
            {"step": 0, "opens": True, "time": samples[0]["time"]},
            {"step": 0, "opens": False, "time": samples[-1]["time"]},
        ],
        [10],
    )[0]
    # Each spinning process holds a good part of a core, however busy the machine is.
    assert figures["app_cpu"] > 10 and figures["generator_cpu"] > 10


def test_the_last_steps_load_generator_is_counted_though_it_ended_before_the_closing_sample():
    """A benchmark's generator exits with its last step, before the sample that closes the
    step's window: its share of that step comes from the last sample that saw it (the
    ramp's top step had no generator figure). One gone before its step ended has none."""
    samples = _samples(busy_from=1000)
    for n, sample in enumerate(samples[1:]):  # a fifth of a core, until 1058
        if sample["time"] <= 1058:
            sample["units"]["generator"] = {"cpu_usec": 400_000 * n, "memory_bytes": 0}
    window = [
        {"step": 0, "opens": True, "time": 1020.0},
        {"step": 0, "opens": False, "time": 1059.0},
    ]
    figures = server_figures(samples, window, [3000])[0]
    assert figures["app_cpu"] == 50.0
    assert figures["generator_cpu"] == 20.0

    last_seen = next(sample for sample in samples[1:] if sample["time"] == 1058)
    last_seen["units"].pop("generator")  # gone before the step's end: no figure
    assert server_figures(samples, window, [3000])[0]["generator_cpu"] is None


def _nginx_config(events: str) -> str:
    """What ``nginx -T`` prints: each file after a comment naming it."""
    return (
        "# configuration file /etc/nginx/nginx.conf:\nuser www-data;\nworker_processes auto;\n"
        f"events {{\n{events}}}\nhttp {{\n}}\n"
        "# configuration file /etc/nginx/sites-enabled/tas:\nserver {\n}\n"
    )


def test_a_load_test_is_refused_where_nginx_would_close_its_users_connections():
    steps = LoadSettings(steps=(500, 1000))
    debian = _nginx_config("\tworker_connections 768;\n\t# multi_accept on;\n")
    provisioned = _nginx_config("\tworker_connections 4096;\n")

    problem = nginx_connections_problem(debian, steps)
    assert problem is not None
    assert "allows 768 connections per worker" in problem
    assert "run `invoke provision` again first" in problem
    assert "allows 512 connections" in str(nginx_connections_problem(_nginx_config(""), steps))
    assert nginx_connections_problem(provisioned, steps) is None

    too_many = nginx_connections_problem(provisioned, LoadSettings(steps=(1000, 5000)))
    assert too_many is not None
    assert "top step's 5000 users" in too_many and "allows 4096 per worker" in too_many
    raised = _nginx_config("\tworker_connections 10000;\n")
    assert nginx_connections_problem(raised, LoadSettings(steps=(1000, 5000))) is None
