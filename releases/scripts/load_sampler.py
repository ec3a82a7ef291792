"""What the server spends while ``invoke loadtest --host`` runs: one JSON line per interval.

Run by the server's ``python3`` as a transient unit (``tas-load-sample-<run>``):
``python3 load_sampler.py OUT [INTERVAL]``. Each line holds the raw counters, the client
works out each step's figures from the two samples that bracket it: the whole machine's
CPU time (``/proc/stat``, steal included), memory, load average, and the CPU time and
resident memory of the app's, PostgreSQL's and nginx's processes (``/proc``: the same on
cgroup v1 and v2 machines; a process that ended between two samples takes its CPU time
with it). Standard library only.
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


def parts() -> dict[str, dict[str, int]]:
    """CPU time (microseconds, of the processes alive now) and resident memory of the app,
    PostgreSQL and nginx, from /proc: the same on cgroup v1 and v2 machines."""
    usage = {name: {"cpu_usec": 0, "memory_bytes": 0} for name in ("app", "postgresql", "nginx")}
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
        part = "nginx" if name == "nginx" else OWNERS.get(uid)
        if part is None:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        usage[part]["cpu_usec"] += ticks * 1_000_000 // TICKS
        usage[part]["memory_bytes"] += resident * PAGE
    return usage


def sample() -> dict[str, object]:
    return {
        "time": time.time(),
        "cpu": cpu_jiffies(),
        "memory": memory(),
        "load1": os.getloadavg()[0],
        "units": parts(),
    }


def main() -> None:
    out = sys.argv[1]
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    header = {"cpus": os.cpu_count(), "clock_ticks": TICKS}
    with open(out, "a") as target:
        target.write(json.dumps({"header": header}) + "\n")
        while True:
            target.write(json.dumps(sample()) + "\n")
            target.flush()
            time.sleep(interval)


if __name__ == "__main__":
    main()
