"""Settings: production refuses to start without a real secret, and says what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service import config


@pytest.fixture
def env(monkeypatch):
    for name in ("APP_ENV", "SECRET_KEY", "DATABASE_URL", "MAX_USERS", "DATA_DIR", "MAX_IMPORT_MB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/tas")
    return monkeypatch


@pytest.mark.parametrize("secret", ["", "change-me", "short"])
def test_production_refuses_a_missing_or_placeholder_secret(env, secret):
    env.setenv("SECRET_KEY", secret)
    with pytest.raises(config.ConfigError, match="SECRET_KEY"):
        config.from_environment()


def test_production_accepts_a_long_random_secret_and_defaults_the_cap_to_25(env):
    env.setenv("SECRET_KEY", "x" * 16 + "9f3a" * 8)
    env.setenv("DATA_DIR", "/srv/tas/shared/data")
    settings = config.from_environment()
    assert settings["MAX_USERS"] == 25
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["DATABASE_URL"].startswith("postgresql+psycopg://")


def test_a_missing_database_url_is_a_clear_error(env):
    env.delenv("DATABASE_URL")
    env.setenv("APP_ENV", "development")
    with pytest.raises(config.ConfigError, match="DATABASE_URL"):
        config.from_environment()


def test_a_non_numeric_user_cap_is_a_clear_error(env):
    env.setenv("APP_ENV", "development")
    env.setenv("MAX_USERS", "lots")
    with pytest.raises(config.ConfigError, match="MAX_USERS must be a whole number"):
        config.from_environment()


def test_production_refuses_to_start_without_a_data_dir_and_names_the_servers(env):
    env.setenv("SECRET_KEY", "x" * 16 + "9f3a" * 8)
    with pytest.raises(config.ConfigError, match=r"DATA_DIR must name .* /srv/tas/shared/data"):
        config.from_environment()
    env.setenv("DATA_DIR", "data")
    with pytest.raises(config.ConfigError, match="DATA_DIR must be an absolute path"):
        config.from_environment()
    env.setenv("DATA_DIR", "/srv/tas/shared/data")
    assert config.from_environment()["DATA_DIR"] == "/srv/tas/shared/data"


def test_development_without_a_data_dir_starts_and_import_limits_have_defaults(env):
    env.setenv("APP_ENV", "development")
    settings = config.from_environment()
    assert settings["DATA_DIR"] is None
    assert (settings["MAX_UPLOAD_MB"], settings["MAX_IMPORT_MB"]) == (20, 32)
    env.setenv("MAX_IMPORT_MB", "0")
    with pytest.raises(config.ConfigError, match="MAX_IMPORT_MB must be 1 or more"):
        config.from_environment()


def test_env_example_lists_every_setting_the_app_reads():
    root = Path(__file__).resolve().parents[2]
    source = (root / "service" / "config.py").read_text()
    read = set(re.findall(r'(?:environ\.get|_int)\("([A-Z_]+)"', source))
    read |= set(config.POSITIVE_DEFAULTS)
    example = (root / ".env.example").read_text()
    listed = set(re.findall(r"(?m)^([A-Z_]+)=", example))
    assert read and read <= listed, sorted(read - listed)
    assert "DATA_DIR=/srv/tas/shared/data" in example.splitlines()
