"""Accounts without passwords: sign-up, sign-in keys, sessions, the account page."""

from service.accounts.views import bp

__all__ = ["bp"]
