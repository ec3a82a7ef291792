"""The invoke tasks as a developer types them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_invoke_test_passes_an_expression_with_spaces_to_pytest_whole():
    expression = (
        "test_a_free_lock_is_taken_with_its_holder_recorded or "
        "test_a_held_lock_says_held_and_keeps_its_holder"
    )
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "test", "-k", expression],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
