"""Scripts the deploy machinery runs on the server, kept as files so that ruff, mypy and
shellcheck check them like the rest of the code (loaded with :func:`text`).

Those run by the server's own ``python3`` use the standard library only (Python 3.10+).
"""

from __future__ import annotations

from importlib import resources


def text(name: str) -> str:
    """The source of the script ``name`` (a file in this package)."""
    return (resources.files(__package__) / name).read_text()
