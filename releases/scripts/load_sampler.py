"""What the server spends while ``invoke loadtest --host`` runs: one JSON line per interval.

Run by the server's ``python3`` as a transient unit (``tas-load-sample-<run>``):
``python3 load_sampler.py OUT [INTERVAL]``. Each line holds the raw counters, the client
works out each step's figures from the two samples that bracket it: the whole machine's
CPU time (``/proc/stat``, steal included), memory, load average, and the CPU time and
memory of the app's and PostgreSQL's systemd units (cgroup v2). Standard library only.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

CGROUPS = "/sys/fs/cgroup/system.slice"
UNITS = {
    "app": [f"{CGROUPS}/tas.service"],
    "postgresql": sorted(glob.glob(f"{CGROUPS}/system-postgresql.slice/postgresql@*.service"))
    or [f"{CGROUPS}/postgresql.service"],
    "nginx": [f"{CGROUPS}/nginx.service"],
}


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


def unit_usage(paths: list[str]) -> dict[str, int]:
    usec = 0
    mem = 0
    for path in paths:
        try:
            with open(f"{path}/cpu.stat") as stat:
                for line in stat:
                    key, value = line.split()
                    if key == "usage_usec":
                        usec += int(value)
            with open(f"{path}/memory.current") as current:
                mem += int(current.read())
        except OSError:
            continue
    return {"cpu_usec": usec, "memory_bytes": mem}


def sample() -> dict[str, object]:
    return {
        "time": time.time(),
        "cpu": cpu_jiffies(),
        "memory": memory(),
        "load1": os.getloadavg()[0],
        "units": {name: unit_usage(paths) for name, paths in UNITS.items()},
    }


def main() -> None:
    out = sys.argv[1]
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    header = {"cpus": os.cpu_count(), "clock_ticks": os.sysconf("SC_CLK_TCK")}
    with open(out, "a") as target:
        target.write(json.dumps({"header": header}) + "\n")
        while True:
            target.write(json.dumps(sample()) + "\n")
            target.flush()
            time.sleep(interval)


if __name__ == "__main__":
    main()
