"""Features depend on shared modules, not on each other's insides.

A feature package (``service/<feature>/``) may import the shared modules (``service/*.py``,
``db``) and itself. It imports another feature only through that feature's ``services``
module, and only where ALLOWED says so and why. Shared modules import no feature package:
the app factory (``service/__init__.py``), which registers every feature's blueprint, is
the one module that knows them all. The imports are read from the source (ast), so an
import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
FEATURES = sorted(
    path.name for path in SERVICE.iterdir() if path.is_dir() and (path / "__init__.py").exists()
)

# (importing feature, imported module): genuine services of another feature, each for a
# reason that belongs to the feature imported. Keep this short.
ALLOWED = {
    # A new account starts with the starter emotions.
    ("accounts", "service.emotions.services"),
    # An attempt's emotions are chosen from the person's own, and created with them.
    ("attempts", "service.emotions.services"),
    # An attempt is started from a task: the task is looked up (404 if not the person's).
    ("attempts", "service.tasks.services"),
    # The dashboard filters by a group: the person's groups.
    ("dashboard", "service.groups.services"),
    # A note on an attempt: the attempt is looked up (404 if not the person's).
    ("notes", "service.attempts.services"),
    # The task form offers the person's emotions and groups.
    ("tasks", "service.emotions.services"),
    ("tasks", "service.groups.services"),
    # The import's files go when the account goes (the account_deleted signal); the
    # import form offers the same time zones as the account page.
    ("transfer", "service.accounts.services"),
}


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, and each name imported from a module as a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _feature_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "service" and parts[1] in FEATURES:
        return parts[1]
    return None


def _module_of(module: str) -> str:
    """``service.<feature>.<module>`` of an imported name (or the package itself)."""
    return ".".join(module.split(".")[:3])


def _crossings() -> dict[str, set[str]]:
    """File → the other features' modules it imports."""
    crossings: dict[str, set[str]] = {}
    for feature in FEATURES:
        for path in sorted((SERVICE / feature).rglob("*.py")):
            other = {
                _module_of(module)
                for module in _imported(path)
                if _feature_of(module) not in (None, feature)
            }
            # "from service.groups import services": the package and its module are named.
            other -= {m for m in other if any(o.startswith(m + ".") for o in other)}
            if other:
                crossings[f"{feature}/{path.relative_to(SERVICE / feature)}"] = other
    return crossings


def test_there_are_feature_packages_to_check() -> None:
    assert {"accounts", "attempts", "dashboard", "analytics", "tasks"} <= set(FEATURES)
    assert _imported(SERVICE / "dashboard" / "views.py") >= {"service.page_cache"}


def test_no_feature_imports_another_but_through_an_allowed_service() -> None:
    forbidden = {
        file: sorted(module for module in modules if (file.split("/")[0], module) not in ALLOWED)
        for file, modules in _crossings().items()
    }
    assert {file: modules for file, modules in forbidden.items() if modules} == {}


def test_the_allow_list_names_services_only_and_each_is_still_used() -> None:
    assert all(module.endswith(".services") for _feature, module in ALLOWED)
    used = {
        (file.split("/")[0], module) for file, modules in _crossings().items() for module in modules
    }
    assert ALLOWED - used == set()


def test_shared_modules_import_no_feature() -> None:
    shared = [path for path in sorted(SERVICE.glob("*.py")) if path.name != "__init__.py"]
    assert SERVICE / "page_cache.py" in shared
    leaning = {
        path.name: sorted(module for module in _imported(path) if _feature_of(module))
        for path in shared
    }
    assert {name: modules for name, modules in leaning.items() if modules} == {}
