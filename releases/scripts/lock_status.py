"""What the deploy lock directory (argv[1]) says, and whether its holder still lives.

Run as root on the server by its python3 (stdlib only); prints one JSON object. The
holder lives while its SSH session does (``session``: sshd PID and start time) or while
the server-side unit it handed the work to runs (``unit``: the transient unit's name).
"""

import json
import os
import subprocess
import sys
import time
from typing import Any

d = sys.argv[1]
out: dict[str, Any] = {"held": os.path.isdir(d)}
if out["held"]:
    out["age"] = time.time() - os.stat(d).st_mtime
    try:
        with open(os.path.join(d, "info.json")) as f:
            out["info"] = json.load(f)
    except (OSError, ValueError):
        out["info"] = None
    alive: bool | None = None
    try:
        with open(os.path.join(d, "session")) as f:
            pid, start = f.read().split()
        with open(f"/proc/{pid}/stat") as f:
            alive = f.read().rsplit(") ", 1)[1].split()[19] == start
    except FileNotFoundError:
        alive = False if os.path.exists(os.path.join(d, "session")) else None
    except (OSError, ValueError, IndexError):
        alive = False
    out["session_alive"] = alive
    try:
        with open(os.path.join(d, "unit")) as f:
            unit = f.read().strip()
    except OSError:
        unit = ""
    if unit:
        state = subprocess.run(
            ["systemctl", "is-active", unit], capture_output=True, text=True, check=False
        ).stdout.strip()
        out["unit"] = unit
        out["unit_active"] = state in ("active", "activating", "deactivating")
print(json.dumps(out))
