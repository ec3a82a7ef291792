#!/usr/bin/env python3
"""Set up .venv from the lock file (when needed) and run an invoke task in it.

    python3 bootstrap.py dev      # run the app (embedded PostgreSQL when DATABASE_URL is unset)
    python3 bootstrap.py test     # run the whole test suite

Standard library only: it runs on a fresh machine with nothing but Python >= 3.10 (on Debian
and Ubuntu also the python3-venv package, which the standard library's venv needs for pip).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
# Running the app needs only the small "local" set; everything else needs the tools too.
APP_TASKS = {"dev", "serve", "migrate", "assets"}
LOCAL_LOCK = ROOT / "requirements" / "local.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
STAMP = VENV / ".installed-from"


def _fingerprint(lock: Path) -> str:
    digest = hashlib.sha256()
    for path in (lock, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return f"{lock.name}:{digest.hexdigest()}"


def _run(*args: str) -> None:
    print("bootstrap:", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def venv_support_problem() -> str:
    """Why this Python cannot make a virtual environment with pip in it ("" when it can)."""
    if importlib.util.find_spec("ensurepip") is None:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return (
            f"this Python ({sys.executable}) cannot create a virtual environment with pip:"
            " its ensurepip module is missing. On Debian and Ubuntu it comes in the"
            f" python3-venv package: sudo apt install python3-venv (or python{version}-venv),"
            " then run this command again."
        )
    return ""


def _has_pip(python: Path) -> bool:
    check = [str(python), "-m", "pip", "--version"]
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


def ensure_venv(task: str) -> Path:
    python = VENV / "bin" / "python"
    installed = STAMP.read_text() if STAMP.exists() else ""
    # A venv left without pip (say, by an earlier run without python3-venv) is made anew.
    if not python.exists() or (not installed and not _has_pip(python)):
        problem = venv_support_problem()
        if problem:
            sys.exit(f"bootstrap: {problem}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        installed = ""
    # The full tool set also runs the app, so it satisfies the app tasks.
    accepted = {_fingerprint(DEV_LOCK)}
    if task in APP_TASKS:
        accepted.add(_fingerprint(LOCAL_LOCK))
    if installed not in accepted:
        lock = LOCAL_LOCK if task in APP_TASKS else DEV_LOCK
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
        _run(*pip, "install", "--require-hashes", "-r", str(lock))
        # The build backend comes from the lock just installed: nothing is fetched unhashed.
        _run(*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(ROOT))
        STAMP.write_text(_fingerprint(lock))
    return python


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 - this script may run on an old Python
        sys.exit("Python 3.10 or newer is needed")
    if not argv:
        sys.exit(__doc__)
    ensure_venv(argv[0])
    invoke = VENV / "bin" / "invoke"
    os.chdir(ROOT)
    os.execv(str(invoke), [str(invoke), *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
