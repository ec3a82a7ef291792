"""Settings from the environment (12-factor). ``.env.example`` lists every variable."""

from __future__ import annotations

import os
from typing import Any

from db.engine import normalize_url

# Values that must never reach production as a secret.
_PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "dev", "secret", "development"}
MIN_SECRET_LENGTH = 32
# Settings that must be whole numbers of 1 or more, and their defaults. The import's limits
# keep an import at the limit within a worker's timeout (docs/benchmarks.md).
POSITIVE_DEFAULTS = {
    "MAX_UPLOAD_MB": 20,
    "MAX_IMPORT_MB": 32,
    "IMPORT_BACKUPS_KEEP": 5,
}


class ConfigError(RuntimeError):
    """The environment does not describe a runnable app; the message says what to fix."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def from_environment() -> dict[str, Any]:
    """Read the settings; refuse to run production without a real secret."""
    env = os.environ.get("APP_ENV", "production").strip().lower()
    if env not in {"production", "development", "testing"}:
        raise ConfigError(f"APP_ENV must be production, development or testing, got {env!r}")
    secret = os.environ.get("SECRET_KEY", "")
    if env == "production" and (
        secret.strip().lower() in _PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH
    ):
        raise ConfigError(
            f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_LENGTH} "
            "characters in production (python3 -c 'import secrets; print(secrets.token_hex(32))')"
        )
    database_url = os.environ.get("DATABASE_URL", "").strip()
    if not database_url:
        raise ConfigError("DATABASE_URL must name the PostgreSQL database to use")
    max_users = _int("MAX_USERS", 25)
    if max_users < 0:
        raise ConfigError("MAX_USERS must be 0 or more")
    data_dir = os.environ.get("DATA_DIR", "").strip()
    if env == "production" and not data_dir:
        raise ConfigError(
            "DATA_DIR must name the writable folder for imported files and their backups in "
            "production (the server's is /srv/tas/shared/data: `invoke provision` sets it)"
        )
    if data_dir and not os.path.isabs(data_dir):
        raise ConfigError(f"DATA_DIR must be an absolute path, got {data_dir!r}")
    limits = {name: _int(name, default) for name, default in POSITIVE_DEFAULTS.items()}
    for name, value in limits.items():
        if value < 1:
            raise ConfigError(f"{name} must be 1 or more")
    return {
        "APP_ENV": env,
        "SECRET_KEY": secret,
        "DATABASE_URL": normalize_url(database_url),
        "DB_POOL_SIZE": _int("DB_POOL_SIZE", 5),
        "MAX_USERS": max_users,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
        # Cookies only over HTTPS outside development.
        "SESSION_COOKIE_SECURE": env == "production",
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        **limits,
        # Writable state: uploads waiting for confirmation, backups of imported files.
        # Required in production; elsewhere the import falls back to the system temp dir.
        "DATA_DIR": data_dir or None,
        # Reverse proxies in front of the app whose X-Forwarded-* headers are trusted
        # (nginx on the VPS: 1). 0 in development, where nothing is in front.
        "PROXY_COUNT": _int("PROXY_COUNT", 1 if env == "production" else 0),
        # Written by each good nightly backup on the server: /healthz reports its age.
        "BACKUP_STATUS_FILE": os.environ.get("BACKUP_STATUS_FILE", "").strip() or None,
    }
