"""History: every attempt of a person, newest first, filtered and searched."""

from service.history.views import bp

__all__ = ["bp"]
