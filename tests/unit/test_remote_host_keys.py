"""Which servers the tasks trust: only recorded SSH host keys (releases/remote.py)."""

from __future__ import annotations

import stat
import subprocess

import pytest
from paramiko import RSAKey
from paramiko.client import SSHClient

from releases import remote


def _ssh_keygen_fingerprint(key: RSAKey, tmp_path) -> str:
    public = tmp_path / "key.pub"
    public.write_text(f"{key.get_name()} {key.get_base64()}\n")
    out = subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True)
    return out.stdout.split()[1]


@pytest.fixture(scope="module")
def key() -> RSAKey:
    return RSAKey.generate(1024)


def test_an_unknown_server_is_refused_with_its_fingerprint_and_what_to_do(key, tmp_path):
    policy = remote._HostKeyPolicy(tmp_path / "known_hosts", accept_new=False)
    with pytest.raises(remote.HostKeyError) as refused:
        policy.missing_host_key(SSHClient(), "203.0.113.9", key)
    message = str(refused.value)
    assert "203.0.113.9 is not a known server" in message
    assert _ssh_keygen_fingerprint(key, tmp_path) in message
    assert "--accept-new-host-key" in message
    assert not (tmp_path / "known_hosts").exists()  # nothing recorded


def test_accepting_records_the_key_privately_for_the_next_connection(key, tmp_path, capsys):
    path = tmp_path / "tas" / "known_hosts"
    policy = remote._HostKeyPolicy(path, accept_new=True)
    policy.missing_host_key(SSHClient(), "[203.0.113.9]:2222", key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _ssh_keygen_fingerprint(key, tmp_path) in capsys.readouterr().out
    later = SSHClient()
    later.load_host_keys(str(path))
    assert later.get_host_keys().lookup("[203.0.113.9]:2222")[key.get_name()] == key


def test_the_known_hosts_file_is_the_projects_own_unless_configured(monkeypatch, tmp_path):
    monkeypatch.delenv(remote.KNOWN_HOSTS_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert remote.known_hosts_file() == tmp_path / "tas" / "known_hosts"
    monkeypatch.setenv(remote.KNOWN_HOSTS_ENV, "/elsewhere/hosts")
    assert str(remote.known_hosts_file()) == "/elsewhere/hosts"
