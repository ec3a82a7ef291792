"""A disposable "fresh VPS" on this machine: a Debian 12 systemd host in its own netns.

The pieces, in the order a test session uses them:

* :func:`ensure_image` — a ``debootstrap`` minbase root file system with the packages a
  provisioned server needs, cached as a zstd tarball (and unpacked next to it) under
  ``/var/cache/tas-e2e`` so later runs, and later CI runs on the same machine, reuse it.
* :class:`VpsBox` — an overlayfs copy of the image with a fresh machine-id, fresh SSH host
  keys and a ``deploy`` user (passwordless sudo, a key generated for this run), booted with
  ``systemd-nspawn -b`` inside a network namespace of its own: a veth pair
  ``10.213.N.1/30`` (host) <-> ``10.213.N.2/30`` (box), so sshd, nginx and PostgreSQL keep
  the ports they have on a real VPS and nothing touches the host's own PostgreSQL.
* :class:`Pebble` — Let's Encrypt's ACME test server and its DNS (pebble-challtestsrv) on
  the host end of the veth, answering ``taskaversionsystem.test`` with the box's address.

Everything started is stopped by PID and everything made is removed in ``close()``, which
the pytest fixtures register as finalizers. Only addresses inside the namespace this
module creates are used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

CACHE = Path(os.environ.get("TAS_E2E_CACHE", "/var/cache/tas-e2e"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Boot and SSH essentials, plus what `invoke provision` installs (the "full" image): the
# provision step still checks them and runs apt only for what is missing.
BASE_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "sudo",
    "iproute2",
    "ca-certificates",
    "curl",
]
SERVER_PACKAGES = ["postgresql", "nginx", "certbot", "python3-cffi-backend", "openssl", "restic"]
# Bump when the way the image is prepared changes: old caches are then ignored.
IMAGE_RECIPE = 2
REQUIRED_TOOLS = [
    "debootstrap",
    "systemd-nspawn",
    "pebble",
    "pebble-challtestsrv",
    "zstd",
    "ip",
    "nsenter",
    "ssh-keygen",
    "openssl",
]


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run a box (empty when everything is there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (debootstrap, namespaces and mounts need it)")
    missing += [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    return missing


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def _log(message: str) -> None:
    print(f"[vpsbox] {message}", flush=True)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    return [p for p in points if (p + "/").startswith(prefix)]


def remove_tree(path: Path) -> None:
    """Delete a build or run directory, never following a mount out of it.

    debootstrap mounts /proc and /sys inside its target; a failed build can leave them
    there. Unmount whatever is below ``path`` first, and let ``rm --one-file-system``
    refuse anything still mounted.
    """
    if not path.exists():
        return
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    if _mounts_under(path):
        raise RuntimeError(f"still mounted under {path}: {_mounts_under(path)}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


# --- the cached image ---------------------------------------------------------------------


def image_key() -> str:
    recipe = json.dumps([IMAGE_RECIPE, SUITE, MIRROR, BASE_PACKAGES, SERVER_PACKAGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """One image build at a time, even across concurrent test sessions."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_image() -> Path:
    """The unpacked image directory: unpacked from the tarball, or built first if missing."""
    key = image_key()
    tarball = CACHE / f"debian12-full-{key}.tar.zst"
    unpacked = CACHE / "images" / key
    with _cache_lock():
        if (unpacked / ".complete").exists():
            return unpacked / "rootfs"
        if tarball.exists():
            _unpack(tarball, unpacked)
        else:
            _prune_other_images(key)
            _build(tarball, unpacked)
        (unpacked / ".complete").write_text(tarball.name + "\n")
    return unpacked / "rootfs"


def _prune_other_images(key: str) -> None:
    """Images of an older recipe are never used again: free their space."""
    for old in CACHE.glob("debian12-full-*.tar.zst"):
        if key not in old.name:
            old.unlink()
    for old in (CACHE / "images").glob("*"):
        if old.name != key:
            remove_tree(old)


def _build(tarball: Path, unpacked: Path) -> None:
    """debootstrap the image, cache it as a tarball, and keep the tree as the unpacked copy."""
    started = time.monotonic()
    work = CACHE / f"build-{os.getpid()}"
    remove_tree(work)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    try:
        _log(f"building the image with debootstrap into {rootfs} (about 1.5 minutes)")
        include = ",".join(BASE_PACKAGES + SERVER_PACKAGES)
        _run(
            ["debootstrap", "--variant=minbase", f"--include={include}", SUITE, str(rootfs)]
            + [MIRROR]
        )
        _prepare_image(rootfs)
        partial = tarball.with_suffix(".partial")
        with open(partial, "wb") as out:
            tar = subprocess.Popen(
                ["tar", "--numeric-owner", "--xattrs", "--acls", "-C", str(rootfs), "-cf", "-"]
                + ["."],
                stdout=subprocess.PIPE,
            )
            subprocess.run(["zstd", "-3", "-T0", "-q"], stdin=tar.stdout, stdout=out, check=True)
            if tar.wait() != 0:
                raise RuntimeError("tar of the image failed")
        partial.rename(tarball)
        remove_tree(unpacked)
        unpacked.mkdir(parents=True)
        rootfs.rename(unpacked / "rootfs")  # same file system: no second copy to unpack
        _log(f"image cached as {tarball} in {time.monotonic() - started:.0f} s")
    finally:
        remove_tree(work)


def _prepare_image(rootfs: Path) -> None:
    """Make the debootstrapped tree a clean template for many boxes."""
    host_sources = Path("/etc/apt/sources.list.d/debian.sources")
    if host_sources.exists():
        shutil.copyfile(host_sources, rootfs / "etc/apt/sources.list.d/debian.sources")
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    for snippet in Path("/etc/apt/apt.conf.d").iterdir():
        target = rootfs / "etc/apt/apt.conf.d" / snippet.name
        if snippet.is_file() and not target.exists():
            shutil.copyfile(snippet, target)
    _run(["chroot", str(rootfs), "apt-get", "clean"])
    for leftover in (rootfs / "var/lib/apt/lists").glob("*_*"):
        leftover.unlink()
    # Every copy gets its own identity at boot time.
    (rootfs / "etc/machine-id").write_text("")
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc/hostname").write_text("vpsbox\n")
    # debootstrap ran in the host's network, where the host's own PostgreSQL holds 5432,
    # so pg_createcluster chose 5433. In the box (its own netns) 5432 is free, as on a VPS.
    for conf in (rootfs / "etc/postgresql").glob("*/main/postgresql.conf"):
        text = conf.read_text()
        conf.write_text(re.sub(r"(?m)^port = \d+", "port = 5432", text))


def _unpack(tarball: Path, unpacked: Path) -> None:
    remove_tree(unpacked)
    (unpacked / "rootfs").mkdir(parents=True)
    zstd = subprocess.Popen(["zstd", "-dc", "-q", str(tarball)], stdout=subprocess.PIPE)
    subprocess.run(
        ["tar", "--numeric-owner", "--xattrs", "--acls", "-C", str(unpacked / "rootfs")]
        + ["-xf", "-"],
        stdin=zstd.stdout,
        check=True,
    )
    if zstd.wait() != 0:
        raise RuntimeError(f"could not decompress {tarball}")


# --- one box ------------------------------------------------------------------------------


def _free_subnet() -> int:
    """An N for 10.213.N.0/30 that no existing namespace or interface uses."""
    taken = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    addresses = _run(["ip", "-o", "addr"]).stdout
    for n in range(1, 250):
        if f"vpsbox-{n}" not in taken and f"10.213.{n}." not in addresses:
            return n
    raise RuntimeError("no free 10.213.N.0/30 subnet left")


def known_hosts_file() -> Path:
    """This test session's trusted SSH host keys (``TAS_KNOWN_HOSTS`` for the tasks): each
    box's own keys, written when it is made, as an operator checks them on the console."""
    return CACHE / "known_hosts" / str(os.getpid())


def forget_dead_sessions_host_keys() -> None:
    for path in (CACHE / "known_hosts").glob("*"):
        if path.name.isdigit() and not Path(f"/proc/{path.name}").exists():
            path.unlink(missing_ok=True)


@dataclass
class VpsBox:
    """A booted copy of the image. ``close()`` undoes everything ``start()`` did."""

    image: Path
    workdir: Path
    n: int = 0
    nspawn: subprocess.Popen[bytes] | None = None
    leader: int = 0
    mounted: bool = False
    netns_made: bool = False
    _log_handle: object = None
    steps: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"vpsbox-{self.n}"

    @property
    def host_address(self) -> str:
        return f"10.213.{self.n}.1"

    @property
    def address(self) -> str:
        return f"10.213.{self.n}.2"

    @property
    def root(self) -> Path:
        return self.workdir / "root"

    @property
    def key_file(self) -> Path:
        return self.workdir / "id_ed25519"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with _cache_lock():  # two sessions at once must not pick the same subnet
            self.n = _free_subnet()
            self._make_network()
        self._mount_copy()
        self._personalize()
        self.trust_host_keys()
        self._boot()

    def _mount_copy(self) -> None:
        for sub in ("upper", "work", "root"):
            (self.workdir / sub).mkdir(exist_ok=True)
        options = (
            f"lowerdir={self.image},upperdir={self.workdir / 'upper'},"
            f"workdir={self.workdir / 'work'}"
        )
        _run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)])
        self.mounted = True
        self._record()

    def _personalize(self) -> None:
        """Fresh machine-id and host keys; a ``deploy`` user with this run's SSH key."""
        machine_id = _run(["systemd-id128", "new"]).stdout.strip()
        (self.root / "etc/machine-id").write_text(machine_id + "\n")
        (self.root / "etc/hosts").write_text(
            "127.0.0.1 localhost\n127.0.1.1 vpsbox\n::1 localhost\n"
        )
        _run(["ssh-keygen", "-q", "-A", "-f", str(self.root)])
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key_file)])
        public = self.key_file.with_suffix(".pub").read_text()
        _run(["chroot", str(self.root), "useradd", "-m", "-s", "/bin/bash", "deploy"])
        ssh_dir = self.root / "home/deploy/.ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(public)
        _run(["chroot", str(self.root), "chown", "-R", "deploy:deploy", "/home/deploy/.ssh"])
        sudoers = self.root / "etc/sudoers.d/deploy"
        sudoers.write_text("deploy ALL=(ALL) NOPASSWD:ALL\n")
        sudoers.chmod(0o440)

    def trust_host_keys(self) -> None:
        """Record the box's host keys for its address in the session's known-hosts file,
        replacing those of an earlier box that had the address."""
        keys = [
            " ".join(path.read_text().split()[:2])
            for path in sorted((self.root / "etc/ssh").glob("ssh_host_*_key.pub"))
        ]
        path = known_hosts_file()
        with _cache_lock():
            path.parent.mkdir(parents=True, exist_ok=True)
            kept = [
                line
                for line in (path.read_text().splitlines() if path.exists() else [])
                if line.split(" ", 1)[0] != self.address
            ]
            path.write_text(
                "".join(f"{line}\n" for line in kept + [f"{self.address} {k}" for k in keys])
            )

    def _make_network(self) -> None:
        host_end, box_end = f"vb{self.n}h", f"vb{self.n}b"
        _run(["ip", "netns", "add", self.name])
        self.netns_made = True
        self._record()
        _run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", box_end])
        _run(["ip", "link", "set", box_end, "netns", self.name])
        _run(["ip", "addr", "add", f"{self.host_address}/30", "dev", host_end])
        _run(["ip", "link", "set", host_end, "up"])
        inside = ["ip", "netns", "exec", self.name, "ip"]
        _run([*inside, "link", "set", box_end, "name", "host0"])
        _run([*inside, "addr", "add", f"{self.address}/30", "dev", "host0"])
        _run([*inside, "link", "set", "host0", "up"])
        _run([*inside, "link", "set", "lo", "up"])

    def _boot(self) -> None:
        started = time.monotonic()
        log = open(self.workdir / "nspawn.log", "wb")  # noqa: SIM115 - closed in close()
        self._log_handle = log
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-q", "-D", str(self.root), "-b", f"--machine={self.name}"]
            + ["--console=passive", "--register=no", "--keep-unit"]
            + [f"--network-namespace-path=/run/netns/{self.name}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._record()
        self.leader = self._wait_for_leader()
        self._record()
        private = Path(f"/proc/{self.leader}/root/run/systemd/private")
        self._wait(lambda: private.exists(), 30, "systemd's private socket")
        state = self.enter(["systemctl", "is-system-running", "--wait"], check=False)
        if state.stdout.strip() not in {"running", "degraded"}:
            raise RuntimeError(f"box did not boot: {state.stdout.strip()}\n{self.journal()}")
        self._wait(self._ssh_answers, 30, "sshd")
        _log(f"{self.name} booted at {self.address} in {time.monotonic() - started:.1f} s")

    def _wait_for_leader(self) -> int:
        assert self.nspawn is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited: {self.nspawn_log()}")
            for child in _children(self.nspawn.pid):
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return child
            time.sleep(0.05)
        raise RuntimeError(f"the box's systemd never started: {self.nspawn_log()}")

    def _ssh_answers(self) -> bool:
        with contextlib.suppress(OSError):
            import socket

            with socket.create_connection((self.address, 22), timeout=1) as sock:
                return sock.recv(4).startswith(b"SSH")
        return False

    @staticmethod
    def _wait(condition: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")

    def enter(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside the box as root (nsenter into all its namespaces)."""
        return subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", *args],
            check=check,
            text=True,
            capture_output=True,
            timeout=120,
        )

    def journal(self) -> str:
        return self.enter(["journalctl", "-n", "80", "--no-pager"], check=False).stdout

    def nspawn_log(self) -> str:
        path = self.workdir / "nspawn.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _record(self) -> None:
        """What this box holds, so a later session can clean up after a killed one."""
        state = {
            "owner": os.getpid(),
            "netns": self.name if self.netns_made else "",
            "veth": f"vb{self.n}h" if self.netns_made else "",
            "root": str(self.root) if self.mounted else "",
            "processes": [
                [pid, name]
                for pid, name in (
                    (self.nspawn and self.nspawn.pid, "systemd-nspawn"),
                    (self.leader, "systemd"),
                )
                if pid
            ],
        }
        (self.workdir / "state.json").write_text(json.dumps(state))

    def close(self) -> None:
        """Power off, then remove the network and the copy. Safe to call more than once."""
        self._power_off()
        if self._log_handle is not None:
            self._log_handle.close()  # type: ignore[attr-defined]
            self._log_handle = None
        if self.mounted:
            _run(["umount", str(self.root)])
            self.mounted = False
        if self.netns_made:
            # Deleting the namespace deletes the box end of the veth, and with it the pair.
            _run(["ip", "netns", "del", self.name])
            self.netns_made = False
            with contextlib.suppress(subprocess.CalledProcessError):
                _run(["ip", "link", "del", f"vb{self.n}h"])
        remove_tree(self.workdir)

    def _power_off(self) -> None:
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        if self.leader:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.enter(["systemctl", "poweroff", "--no-block"], check=False)
        try:
            self.nspawn.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # The container's init by PID: killing it ends every process in its namespace.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.leader, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.nspawn.pid, signal.SIGKILL)
            self.nspawn.wait(timeout=10)


def clean_stale_runs() -> None:
    """Undo what a killed test session left behind (its owner PID is gone).

    Processes are killed only by the PIDs recorded, and only if the PID still runs the
    program recorded (a PID may have been reused since).
    """
    for state_file in (CACHE / "runs").glob("*/state.json"):
        state = json.loads(state_file.read_text())
        if Path(f"/proc/{state['owner']}").exists():
            continue
        _log(f"cleaning up after dead session {state['owner']}: {state_file.parent}")
        pids = [*state.get("processes", [])]
        pebble_state = state_file.parent / "pebble" / "pids.json"
        if pebble_state.exists():
            pids += json.loads(pebble_state.read_text())
        for pid, name in pids:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == name[:15]:
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        if state["root"] and state["root"] in _mounts_under(state_file.parent):
            subprocess.run(["umount", "-l", state["root"]], check=False)
        if state["netns"]:
            subprocess.run(["ip", "netns", "del", state["netns"]], check=False, capture_output=True)
        if state["veth"]:
            subprocess.run(["ip", "link", "del", state["veth"]], check=False, capture_output=True)
        remove_tree(state_file.parent)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


# --- the ACME test server -----------------------------------------------------------------


@dataclass
class Pebble:
    """pebble (ACME) + pebble-challtestsrv (its DNS) on the host end of a box's veth."""

    listen: str
    box_address: str
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    acme_port: int = 14000
    management_port: int = 15000
    dns_port: int = 8053
    dns_management_port: int = 8055

    @property
    def directory_url(self) -> str:
        return f"https://{self.listen}:{self.acme_port}/dir"

    @property
    def api_ca(self) -> Path:
        """The CA that signed pebble's own HTTPS certificate (what certbot must trust)."""
        return self.workdir / "api-ca.pem"

    @property
    def issuer_root(self) -> Path:
        """Pebble's issuing root, fetched after start (what clients of nginx must trust)."""
        return self.workdir / "issuer-root.pem"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._make_api_certificate()
        config = {
            "pebble": {
                "listenAddress": f"{self.listen}:{self.acme_port}",
                "managementListenAddress": f"{self.listen}:{self.management_port}",
                "certificate": str(self.workdir / "api.pem"),
                "privateKey": str(self.workdir / "api.key"),
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (self.workdir / "pebble.json").write_text(json.dumps(config))
        self._spawn(
            "challtestsrv",
            ["pebble-challtestsrv", "-defaultIPv4", self.box_address, "-defaultIPv6", ""]
            + ["-dns01", f"{self.listen}:{self.dns_port}", "-http01", "", "-https01", ""]
            + ["-tlsalpn01", "", "-management", f"{self.listen}:{self.dns_management_port}"],
        )
        self._spawn(
            "pebble",
            ["pebble", "-config", str(self.workdir / "pebble.json")]
            + ["-dnsserver", f"{self.listen}:{self.dns_port}"],
            env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        )
        self._fetch_issuer_root()

    def _make_api_certificate(self) -> None:
        ca_key, ca = self.workdir / "api-ca.key", self.api_ca
        _run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
            + ["-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2"]
            + ["-subj", "/CN=tas e2e pebble API CA"]
        )
        (self.workdir / "san.ext").write_text(f"subjectAltName=IP:{self.listen}\n")
        _run(
            ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            + ["-keyout", str(self.workdir / "api.key"), "-out", str(self.workdir / "api.csr")]
            + ["-subj", f"/CN={self.listen}"]
        )
        _run(
            ["openssl", "x509", "-req", "-in", str(self.workdir / "api.csr"), "-CA", str(ca)]
            + ["-CAkey", str(ca_key), "-CAcreateserial", "-days", "2"]
            + ["-extfile", str(self.workdir / "san.ext"), "-out", str(self.workdir / "api.pem")]
        )

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - child keeps it
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        self.processes.append(process)
        recorded = [[p.pid, Path(p.args[0]).name] for p in self.processes]  # type: ignore[index]
        (self.workdir / "pids.json").write_text(json.dumps(recorded))

    def _fetch_issuer_root(self) -> None:
        # Pebble makes a new root at every start: fetch it now, over its own (our) CA.
        context = ssl.create_default_context(cafile=str(self.api_ca))
        url = f"https://{self.listen}:{self.management_port}/roots/0"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url, context=context, timeout=2) as response:
                    self.issuer_root.write_bytes(response.read())
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                for process in self.processes:
                    if process.poll() is not None:
                        log = (self.workdir / "pebble.log").read_text(errors="replace")
                        raise RuntimeError(f"pebble exited: {log}") from None
                time.sleep(0.2)

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
