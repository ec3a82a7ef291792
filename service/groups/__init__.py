"""Task groups (the old app's "jobs"): a person's named groups of tasks, used to filter the
dashboard, history and analytics."""

from service.groups.views import bp

__all__ = ["bp"]
