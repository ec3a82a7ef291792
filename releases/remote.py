"""A server reached over SSH (Fabric), with the idempotent file operations provisioning needs.

Every command runs as ``sudo -n sh -c '<command>'``: Fabric's ``sudo()`` would put only the
first part of ``a || b`` under sudo, and ``-n`` fails at once instead of waiting for a
password prompt nobody answers. In a dry run, the ``ensure_*`` helpers only say whether
they would change something.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import shlex
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from importlib import resources
from pathlib import Path
from pathlib import PurePosixPath

from fabric import Config
from fabric import Connection
from invoke.exceptions import UnexpectedExit
from invoke.runners import Result
from paramiko.client import MissingHostKeyPolicy
from paramiko.client import SSHClient
from paramiko.pkey import PKey
from paramiko.ssh_exception import BadHostKeyException
from paramiko.ssh_exception import SSHException

# Placeholders in releases/templates look like {{ name }}; nothing else there uses braces twice.
_MANAGED = "Managed by `invoke provision` (releases/templates); local edits are overwritten."


_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Ctrl-C lets the server command that runs finish, then stops at the next one.

    Without this, invoke's runner swallows a Ctrl-C during a remote command (it sends the
    byte to the command's stdin, which nobody reads) and the deploy goes on as if nothing
    happened. Here the interrupt is remembered and raised as :class:`KeyboardInterrupt`
    when that command returns, so what the operator asked for happens at a step boundary:
    before the hand-over the deploy stops and says so; after it, the client detaches.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda signum, frame: _INTERRUPTED.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _INTERRUPTED.clear()


def raise_if_interrupted() -> None:
    """Raise the remembered Ctrl-C (once)."""
    if _INTERRUPTED.is_set():
        _INTERRUPTED.clear()
        raise KeyboardInterrupt


class ServerError(RuntimeError):
    """Working on the server failed; the message says where and why (no traceback needed)."""


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str = "deploy"
    port: int = 22
    key_file: str | None = None
    # Only `invoke provision --accept-new-host-key`: record the key of a server seen for the
    # first time (printing its fingerprint). Every other task refuses an unknown server.
    accept_new_host_key: bool = False


KNOWN_HOSTS_ENV = "TAS_KNOWN_HOSTS"


def known_hosts_file() -> Path:
    """The servers' host keys the project's tasks trust (``$TAS_KNOWN_HOSTS``, by default
    ``~/.config/tas/known_hosts``); keys in ``~/.ssh/known_hosts`` are trusted as well."""
    configured = os.environ.get(KNOWN_HOSTS_ENV)
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "tas" / "known_hosts"


def fingerprint(key: PKey) -> str:
    """``SHA256:...`` as ``ssh-keygen -lf`` prints it."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class HostKeyError(SSHException):
    """The server is unknown, or its host key is not the one recorded; the message says
    what was seen and what to do."""


class _HostKeyPolicy(MissingHostKeyPolicy):
    """An unknown server: refused, or with ``accept_new`` recorded in the known-hosts file."""

    def __init__(self, path: Path, accept_new: bool) -> None:
        self.path = path
        self.accept_new = accept_new

    def missing_host_key(self, client: SSHClient, hostname: str, key: PKey) -> None:
        seen = f"{key.get_name()} {fingerprint(key)}"
        if not self.accept_new:
            raise HostKeyError(
                f"{hostname} is not a known server (its host key is {seen}). Compare it with "
                "the server's own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its "
                "console), then record it: `invoke provision --host ... --accept-new-host-key` "
                f"(trusted keys are kept in {self.path})"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with open(self.path, "a", opener=lambda p, f: os.open(p, f, 0o600)) as known:
            known.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)
        print(f"ssh: recorded the host key of {hostname}: {seen} (in {self.path})", flush=True)


def host_key_message(exc: BadHostKeyException, host: str) -> str:
    return (
        f"the host key of {host} is not the one recorded: it is now "
        f"{exc.key.get_name()} {fingerprint(exc.key)}, it was "
        f"{exc.expected_key.get_name()} {fingerprint(exc.expected_key)}. Nothing was run. "
        "If the server was rebuilt, check its new key on its console, remove its line from "
        f"{known_hosts_file()} and run `invoke provision --accept-new-host-key`; otherwise "
        "someone may be between you and the server"
    )


def connect(target: SshTarget) -> Connection:
    connect_kwargs: dict[str, object] = {}
    if target.key_file:
        connect_kwargs.update(key_filename=target.key_file, look_for_keys=False, allow_agent=False)
    # in_stream=False: commands never read the local stdin (it may be pytest's, or closed).
    config = Config(overrides={"run": {"in_stream": False}})
    connection = Connection(
        target.host,
        user=target.user,
        port=target.port,
        connect_kwargs=connect_kwargs,
        config=config,
        connect_timeout=15,
    )
    # Fabric accepts any host key by default; these tasks run root commands on whatever
    # answers, so only a recorded key is accepted (a changed one raises BadHostKeyException).
    path = known_hosts_file()
    with contextlib.suppress(OSError):
        connection.client.load_system_host_keys()
    if path.exists():
        connection.client.load_host_keys(str(path))
    connection.client.set_missing_host_key_policy(_HostKeyPolicy(path, target.accept_new_host_key))
    return connection


def render(template: str, **values: object) -> str:
    """Fill ``{{ name }}`` placeholders; an unknown or unused name is an error, not a blank."""
    text = (resources.files("releases") / "templates" / template).read_text()
    values = {"managed": _MANAGED, **values}
    used = set()
    out = text
    for name, value in values.items():
        placeholder = "{{ " + name + " }}"
        if placeholder in out:
            used.add(name)
            out = out.replace(placeholder, str(value))
    if "{{ " in out:
        start = out.index("{{ ")
        raise KeyError(f"{template}: no value for {out[start : out.index('}}', start) + 2]}")
    unused = set(values) - used - {"managed"}
    if unused:
        raise KeyError(f"{template}: values not used: {sorted(unused)}")
    return out


@dataclass
class Remote:
    """Commands and idempotent file operations on one server."""

    connection: Connection
    dry_run: bool = False
    _scratch: str | None = field(default=None, repr=False)

    def run(self, command: str, *, warn: bool = False, stdin: str | None = None) -> Result:
        kwargs: dict[str, object] = {"hide": True, "warn": warn}
        if stdin is not None:
            kwargs["in_stream"] = io.StringIO(stdin)
        result = self.connection.run(command, **kwargs)
        assert result is not None
        raise_if_interrupted()
        return result

    def sudo(
        self, command: str, *, user: str = "", warn: bool = False, stdin: str | None = None
    ) -> Result:
        as_user = f"-u {shlex.quote(user)} " if user else ""
        return self.run(f"sudo -n {as_user}sh -c {shlex.quote(command)}", warn=warn, stdin=stdin)

    def ok(self, command: str, *, user: str = "") -> bool:
        """Whether a probe succeeds (its exit status, never an exception)."""
        return self.sudo(command, user=user, warn=True).exited == 0

    def read(self, path: str) -> str | None:
        q = shlex.quote(path)
        result = self.sudo(f"if [ -f {q} ]; then cat {q}; else exit 3; fi", warn=True)
        if result.exited == 3:
            return None
        if result.exited != 0:
            raise RuntimeError(f"cannot read {path}: {result.stderr.strip()}")
        return result.stdout

    def exists(self, path: str) -> bool:
        return self.ok(f"[ -e {shlex.quote(path)} ]")

    def stat(self, path: str) -> str | None:
        """``mode owner group`` of a path (``644 root root``), or None when it is missing."""
        result = self.sudo(f"stat -c '%a %U %G' {shlex.quote(path)}", warn=True)
        return result.stdout.strip() if result.exited == 0 else None

    def ensure_file(
        self, path: str, content: str, *, mode: str = "644", owner: str = "root", group: str = ""
    ) -> bool:
        """Make ``path`` hold exactly ``content`` with this mode and ownership.

        Returns whether anything changed (or would change, in a dry run). The new content
        is uploaded into a private directory and moved into place, so a reader never sees
        half a file and a secret is never readable by others on the way.
        """
        group = group or owner
        wanted = f"{mode} {owner} {group}"
        if self.read(path) == content and self.stat(path) == wanted:
            return False
        if self.dry_run:
            return True
        staged = f"{self.scratch()}/{PurePosixPath(path).name}"
        self.connection.put(io.BytesIO(content.encode()), staged)
        q, staged_q = shlex.quote(path), shlex.quote(staged)
        self.sudo(
            f"install -m {mode} -o {owner} -g {group} {staged_q} {q}.tas-new && "
            f"mv -f {q}.tas-new {q} && rm -f {staged_q}"
        )
        return True

    def ensure_directory(
        self, path: str, *, mode: str = "755", owner: str = "root", group: str = ""
    ) -> bool:
        group = group or owner
        if self.stat(path) == f"{mode} {owner} {group}":
            return False
        if not self.dry_run:
            self.sudo(f"install -d -m {mode} -o {owner} -g {group} {shlex.quote(path)}")
        return True

    def ensure_symlink(self, path: str, target: str) -> bool:
        q = shlex.quote(path)
        current = self.sudo(f"readlink {q}", warn=True)
        if current.exited == 0 and current.stdout.strip() == target:
            return False
        if not self.dry_run:
            self.sudo(f"ln -sfn {shlex.quote(target)} {q}")
        return True

    def ensure_absent(self, path: str) -> bool:
        q = shlex.quote(path)
        if not self.ok(f"[ -e {q} ] || [ -L {q} ]"):
            return False
        if not self.dry_run:
            self.sudo(f"rm -f {q}")
        return True

    def scratch(self) -> str:
        """A directory only the SSH user can read, removed by :meth:`close`."""
        if self._scratch is None:
            self._scratch = self.run("mktemp -d /tmp/tas-upload.XXXXXXXX").stdout.strip()
        return self._scratch

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the connection may be what failed
            if self._scratch is not None:
                self.run(f"rm -rf {shlex.quote(self._scratch)}", warn=True)
        self._scratch = None
        self.connection.close()


@contextlib.contextmanager
def open_remote(target: SshTarget, *, dry_run: bool = False) -> Iterator[Remote]:
    """A :class:`Remote` for ``target``, closed afterwards; SSH and command failures become
    :class:`ServerError` with the failing command and its output."""
    remote = Remote(connect(target), dry_run=dry_run)
    where = f"{target.user}@{target.host}:{target.port}"
    try:
        yield remote
    except UnexpectedExit as exc:
        result = exc.result
        output = (result.stderr or result.stdout).strip()
        raise ServerError(
            f"on {where}, `{result.command}` exited {result.exited}:\n{output}"
        ) from exc
    except BadHostKeyException as exc:
        raise ServerError(host_key_message(exc, where)) from exc
    except HostKeyError as exc:
        raise ServerError(str(exc)) from exc
    except (OSError, EOFError, SSHException) as exc:
        # A dropped connection shows as any of these (paramiko raises EOFError mid-command).
        why = str(exc) or type(exc).__name__
        raise ServerError(f"cannot work over SSH on {where}: {why}") from exc
    finally:
        remote.close()
