"""Attempts: initialize (predict) → start ⇄ pause → complete, or cancel."""

from service.attempts.views import bp

__all__ = ["bp"]
