"""Code and CI-definition quality gates, run with the rest of the suite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_finds_no_lint_errors():
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted_by_ruff():
    result = _run("ruff", "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_errors_in_service_db_releases_and_tasks():
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_validate_against_githubs_workflow_schema():
    assert WORKFLOWS, "no workflow found"
    args = ["check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    result = _run(*args, *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_have_no_medium_or_high_zizmor_findings():
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("zizmor")),
            "--offline",
            "--format",
            "json",
            *map(str, WORKFLOWS),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    serious = [
        f"{f['ident']}: {f['desc']}"
        for f in findings
        if f["determinations"]["severity"] in {"Medium", "High"}
    ]
    assert serious == []


def test_shell_scripts_the_deploy_machinery_runs_pass_shellcheck():
    """The scripts sent to servers, and the shell templates as provisioning renders them."""
    import shutil

    if shutil.which("shellcheck") is None:
        if os.environ.get("CI_REQUIRE_ALL") == "1":
            pytest.fail("shellcheck is missing (CI_REQUIRE_ALL=1: not skipping)")
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    from releases.remote import render

    scripts = sorted((ROOT / "releases" / "scripts").glob("*.sh"))
    assert scripts, "no shell scripts found"
    rendered = []
    for template in sorted((ROOT / "releases" / "templates").glob("*.sh")):
        text = template.read_text()
        names = set(re.findall(r"{{ (\w+) }}", text)) - {"managed"}
        target = Path(os.environ.get("TMPDIR", "/tmp")) / f"tas-shellcheck-{template.name}"
        target.write_text(render(template.name, **{name: "/srv/tas/x" for name in names}))
        rendered.append(target)
    result = subprocess.run(
        ["shellcheck", "--shell=sh", *map(str, scripts + rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
