"""Notes: a person's timestamped free-text notes, on their own or on an attempt."""

from service.notes.views import bp

__all__ = ["bp"]
