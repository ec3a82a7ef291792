"""What the server spends while ``invoke loadtest --host`` runs: one JSON line per interval.

Run by the server's ``python3`` as a transient unit (``tas-load-sample-<run>``):
``python3 load_sampler.py OUT [INTERVAL] [APP_PID]``. Each line holds the raw counters, the
client works out each step's figures from the two samples that bracket it: the whole
machine's CPU time (``/proc/stat``, steal included), memory, load average, and the CPU time
and resident memory of the app's, PostgreSQL's and nginx's processes (``/proc``: the same
on cgroup v1 and v2 machines; a process that ended between two samples takes its CPU time
with it), and of a load generator (locust) running on the same machine, if any.

On a server the app is the ``tas`` user's processes. Where it runs as another user (a
benchmark on one machine), ``APP_PID`` names its gunicorn: that process and its children
are the app. Standard library only.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def _owners() -> dict[int, str]:
    """The users whose processes make up each part: the app runs as tas, PostgreSQL as
    postgres (nginx is found by its name: its master runs as root)."""
    found = {}
    for user, part in (("tas", "app"), ("postgres", "postgresql")):
        try:
            found[pwd.getpwnam(user).pw_uid] = part
        except KeyError:
            continue
    return found


OWNERS = _owners()


def cpu_jiffies() -> dict[str, int]:
    with open("/proc/stat") as stat:
        words = stat.readline().split()
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {name: int(value) for name, value in zip(names, words[1:9], strict=False)}


def memory() -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/meminfo") as info:
        for line in info:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _is_generator(entry: str, name: str) -> bool:
    """A locust process (``python -m locust ...``): the load generator on this machine."""
    if not name.startswith("python") and name != "locust":
        return False
    try:
        with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
            return b"locust" in cmdline.read()
    except OSError:
        return False


def parts(app_pid: int | None = None) -> dict[str, dict[str, int]]:
    """CPU time (microseconds, of the processes alive now) and resident memory of the app,
    PostgreSQL, nginx and a load generator, from /proc: the same on cgroup v1 and v2
    machines. ``app_pid``: the app is that process and its children, whoever runs them."""
    names = ("app", "postgresql", "nginx", "generator")
    usage = {name: {"cpu_usec": 0, "memory_bytes": 0} for name in names}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{entry}").st_uid
            with open(f"/proc/{entry}/stat") as stat:
                raw = stat.read()
            with open(f"/proc/{entry}/statm") as statm:
                resident = int(statm.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        if name == "nginx":
            part: str | None = "nginx"
        elif app_pid is not None and app_pid in (int(entry), int(fields[1])):
            part = "app"
        else:
            part = OWNERS.get(uid)
        if part is None and _is_generator(entry, name):
            part = "generator"
        if part is None:
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        usage[part]["cpu_usec"] += ticks * 1_000_000 // TICKS
        usage[part]["memory_bytes"] += resident * PAGE
    return usage


def sample(app_pid: int | None = None) -> dict[str, object]:
    return {
        "time": time.time(),
        "cpu": cpu_jiffies(),
        "memory": memory(),
        "load1": os.getloadavg()[0],
        "units": parts(app_pid),
    }


def main() -> None:
    out = sys.argv[1]
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    app_pid = int(sys.argv[3]) if len(sys.argv) > 3 else None
    header = {"cpus": os.cpu_count(), "clock_ticks": TICKS}
    with open(out, "a") as target:
        target.write(json.dumps({"header": header}) + "\n")
        while True:
            target.write(json.dumps(sample(app_pid)) + "\n")
            target.flush()
            time.sleep(interval)


if __name__ == "__main__":
    main()
