"""The Task Aversion System web app (package ``service``)."""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any

from flask import Flask

from service import accounts
from service import analytics
from service import attempts
from service import auth
from service import cli
from service import config
from service import dashboard
from service import database
from service import emotions
from service import errors
from service import groups
from service import health
from service import history
from service import notes
from service import security
from service import tasks
from service import templating
from service import transfer


def package_version() -> str:
    try:
        return metadata.version("task-aversion-system")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0.0.0+unknown"


class App(Flask):
    jinja_environment = templating.Environment


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment (or ``test_config``), then extensions."""
    app = App(__name__)
    settings = config.from_environment() if test_config is None else dict(test_config)
    app.config.update(
        VERSION=package_version(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # The cookie holds a random token whose lifetime the server keeps (user_sessions);
        # re-signing and re-sending it with every response bought nothing and cost CPU.
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_USERS=25,
        DB_POOL_SIZE=5,
        # The upload and import limits (MAX_UPLOAD_MB, MAX_IMPORT_MB, IMPORT_BACKUPS_KEEP).
        **config.POSITIVE_DEFAULTS,
        LOG_LEVEL="INFO",
        PROXY_COUNT=0,
        RATELIMIT_ENABLED=True,
    )
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    logging.basicConfig(level=app.config["LOG_LEVEL"])

    database.init_app(app)
    cli.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    auth.init_app(app)
    templating.init_app(app)
    for blueprint in (
        health.bp,
        accounts.bp,
        dashboard.bp,
        tasks.bp,
        attempts.bp,
        history.bp,
        notes.bp,
        emotions.bp,
        transfer.bp,
        analytics.bp,
        groups.bp,
    ):
        app.register_blueprint(blueprint)
    security.limit_in_routes_only(app)
    return app
