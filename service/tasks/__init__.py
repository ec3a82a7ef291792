"""Task templates: create, edit (a new version), archive and restore."""

from service.tasks.views import bp

__all__ = ["bp"]
