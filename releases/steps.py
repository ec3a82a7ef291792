"""The steps a deploy runs over SSH before it hands over to the server.

Upload and unpack, install a release venv from its wheelhouse (no index: the server needs
neither PyPI nor git), mark a release failed, remove old ones. What changes what serves
(migrate, canary, switch, restart, health gate, undo) runs on the server by itself:
``releases/scripts/runner.py`` (see :mod:`releases.handover`).
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

from releases import scripts
from releases.inventory import FAILED_MARK
from releases.provision import ENV_FILE
from releases.provision import NGINX_SITE
from releases.remote import Remote
from releases.shell import sudo_input

CANARY_UNIT = "tas-canary"
CANARY_SOCKET = f"/run/{CANARY_UNIT}/gunicorn.sock"


class Steps:
    """Prints each step as it starts and ends, and keeps its duration for the deploy log."""

    def __init__(self, prefix: str, echo: Callable[[str], None]) -> None:
        self.prefix = prefix
        self.echo = echo
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[dict[str, str]]:
        self.echo(f"{self.prefix}: {name} ...")
        note: dict[str, str] = {"detail": ""}
        started = time.monotonic()
        try:
            yield note
        finally:
            took = time.monotonic() - started
            self.timings[name] = round(took, 2)
        detail = f": {note['detail']}" if note["detail"] else ""
        self.echo(f"{self.prefix}: {name}: done [{took:.1f}s]{detail}")

    def say(self, line: str) -> None:
        self.echo(f"{self.prefix}: {line}")


def upload_bundle(remote: Remote, bundle: Path, path: str) -> None:
    """Put a tarball on the server and unpack it into the release directory ``path``."""
    staged = f"{remote.scratch()}/{bundle.name}"
    remote.connection.put(str(bundle), staged)
    q = shlex.quote(path)
    remote.sudo(f"install -d -m 755 {q} && tar -xzf {shlex.quote(staged)} -C {q} && rm -f {staged}")


def install_dependencies(remote: Remote, path: str) -> str:
    """The release's venv with the hash-checked wheelhouse, from no index; returns how.

    A release installed from the same requirements lends its venv (copied, the project
    uninstalled from the copy); otherwise a fresh venv is made and its bytecode compiled on
    every core (the app runs as a user who cannot write into the release, so it must be
    there up front). See releases/scripts/install_venv.sh.
    """
    script = scripts.text("install_venv.sh")
    project = "task-aversion-system"
    result = remote.sudo(f"sh -c {shlex.quote(script)} install {shlex.quote(path)} {project}")
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def install_app(remote: Remote, path: str, wheel_name: str) -> None:
    """The project wheel into the release venv; its static files and env file linked in."""
    python = f"{path}/venv/bin/python"
    remote.sudo(
        f"PIP_DISABLE_PIP_VERSION_CHECK=1 {python} -m pip install -q --no-index --no-deps "
        f"{path}/dist/{wheel_name}"
    )
    # nginx serves /static/ from <current>/static: a link into this release's venv. The
    # env file stays shared (secrets are never copied into a release).
    remote.sudo(
        f"ln -sfn $({python} -c 'import service, os; print(os.path.dirname(service.__file__))')"
        f"/static {path}/static && ln -sfn {ENV_FILE} {path}/tas.env"
    )


def mark_failed(remote: Remote, path: str, reason: str) -> None:
    first_line = reason.strip().splitlines()[0] if reason.strip() else "failed"
    sudo_input(remote, f"cat > {path}/{FAILED_MARK}", first_line[:300] + "\n")


# A release being deleted is first renamed to this prefix (one atomic step), so nothing
# ever sees, plans with or switches to a half-deleted release; the inventory skips such
# names, and the next clean-up finishes one a lost connection left behind.
DELETING_PREFIX = ".deleting-"


def remove_releases(remote: Remote, paths: list[str]) -> None:
    if not paths:
        return
    moves = []
    for path in paths:
        folder, _, name = path.rstrip("/").rpartition("/")
        aside = shlex.quote(f"{folder}/{DELETING_PREFIX}{name}")
        moves.append(f"mv -T -- {shlex.quote(path)} {aside}")
    folder = shlex.quote(paths[0].rstrip("/").rpartition("/")[0])
    remote.sudo(" && ".join(moves) + f" && rm -rf -- {folder}/{DELETING_PREFIX}*")


def site_domain(remote: Remote) -> str:
    """The domain nginx serves the app on (its site's first server_name)."""
    site = remote.read(NGINX_SITE) or ""
    for line in site.splitlines():
        words = line.strip().rstrip(";").split()
        if len(words) >= 2 and words[0] == "server_name":
            return words[1]
    raise RuntimeError(f"no server_name in {NGINX_SITE}: give --domain")
