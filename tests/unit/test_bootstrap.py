"""`python3 bootstrap.py` on a machine whose Python cannot make a venv with pip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs bootstrap.py as `python3 bootstrap.py dev` would, in a Python where ensurepip is
# missing (as on Debian and Ubuntu without python3-venv).
WITHOUT_ENSUREPIP = """
import runpy, sys
sys.modules["ensurepip"] = None
sys.argv = [sys.argv[1], "dev"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_python_without_ensurepip_gets_told_to_install_python3_venv(tmp_path):
    # A copy, so that the .venv it would make is a throwaway one beside it.
    script = tmp_path / "bootstrap.py"
    shutil.copyfile(ROOT / "bootstrap.py", script)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_ENSUREPIP, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert "python3-venv" in result.stderr and "apt install" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".venv").exists(), "a half-made venv was left behind"
