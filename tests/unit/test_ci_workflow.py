"""The GitHub workflow runs what CI runs, lint first; Dependabot watches every ecosystem.

(tests/unit/test_quality.py validates the workflow files against GitHub's schema and zizmor.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def _uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_a_fast_lint_job_runs_ruff_ruff_format_and_mypy_before_the_tests():
    jobs = _load(WORKFLOW)["jobs"]
    lint = jobs["lint"]
    assert "needs" not in lint
    commands = _runs(lint)
    for command in ("ruff check", "ruff format --check", "mypy"):
        assert command in commands, command
    # The tools come from the hashed lock, on the oldest supported Python.
    assert "--require-hashes -r requirements/dev.lock" in commands
    (setup,) = [s for s in lint["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["python-version"] == "3.10"
    assert setup["with"]["cache"] == "pip"
    assert jobs["test"]["needs"] == "lint"


def test_the_test_job_runs_the_ci_script_with_nothing_allowed_to_skip():
    test = _load(WORKFLOW)["jobs"]["test"]
    assert "bash .ci/run" in _runs(test)
    assert str(test["env"]["CI_REQUIRE_ALL"]) == "1"
    # Root, namespaces and mounts for the end-to-end tests' systemd-nspawn servers.
    assert test["container"]["image"].startswith("debian:12")
    assert "--privileged" in test["container"]["options"]
    assert "actions/cache" in _uses(test) and "PIP_CACHE_DIR" in test["env"]
    # No pretence: nothing installs the end-to-end packages outside .ci/run and then skips.
    assert "debootstrap" not in _runs(test)


def test_dependabot_updates_pip_npm_and_the_actions():
    updates = _load(DEPENDABOT)["updates"]
    assert {u["package-ecosystem"] for u in updates} == {"pip", "npm", "github-actions"}
    assert all(u["directory"] == "/" for u in updates)


def test_dependabot_config_validates_against_its_schema():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.dependabot"]
        + [str(DEPENDABOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
