"""The home page: what's running, what's ready, this week, and what to do next."""

from service.dashboard.views import bp

__all__ = ["bp"]
