"""A person's own emotion words, used when predicting and recording outcomes."""

from service.emotions.views import bp

__all__ = ["bp"]
