"""Account rules: case-insensitive unique names, sign-in keys, the user cap."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from functools import lru_cache
from zoneinfo import available_timezones

from blinker import Namespace
from sqlalchemy import delete
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.load_accounts import RUN_NAME
from db.models import USERNAME_MAX
from db.models import LoadTestAccount
from db.models import User
from service import database

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Sent with ``user_id`` once an account's deletion is committed: features that keep a
# person's data outside the database (the import's files) delete it then.
account_deleted = Namespace().signal("account-deleted")
# Serialises sign-ups so two at once can't both take the last place under the cap.
SIGNUP_LOCK_KEY = 0x7A5_516E


class UsernameTaken(Exception):
    def __init__(self, suggestions: list[str]) -> None:
        super().__init__("username taken")
        self.suggestions = suggestions


class SignupClosed(Exception):
    pass


@lru_cache(maxsize=1)
def time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def valid_time_zone(name: str | None) -> bool:
    return bool(name) and name in time_zones()


def new_signin_key() -> str:
    """A random key, grouped for reading aloud or typing: 5 groups of 5 characters."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i lookalikes
    raw = "".join(secrets.choice(alphabet) for _ in range(25))
    return "-".join(raw[i : i + 5] for i in range(0, 25, 5))


def key_hash(key: str) -> str:
    # The key has ~120 bits of entropy: a fast hash is enough (no dictionary to attack).
    normalized = key.strip().lower().replace(" ", "")
    return hashlib.sha256(normalized.encode()).hexdigest()


def find_user(db: Session, username: str) -> User | None:
    return db.scalar(select(User).where(func.lower(User.username) == username.lower()))


def suggest_usernames(db: Session, username: str, count: int = 2) -> list[str]:
    base = username[: USERNAME_MAX - 4]
    candidates = [f"{base}{n}" for n in (2, 3, 7, 11, 42, 99)]
    candidates += [f"{base}_{secrets.randbelow(900) + 100}" for _ in range(4)]
    taken = set(
        db.scalars(
            select(func.lower(User.username)).where(
                func.lower(User.username).in_([c.lower() for c in candidates])
            )
        )
    )
    return [c for c in candidates if c.lower() not in taken][:count]


def signup_open(db: Session, max_users: int) -> bool:
    """Room for one more person under the cap. A load test's accounts
    (``load_test_accounts``) are not people: a run on the live site never closes sign-up."""
    people = (
        select(func.count())
        .select_from(User)
        .where(~exists().where(LoadTestAccount.user_id == User.id))
    )
    return (database.run(db, people).scalar() or 0) < max_users


def live_load_run(db: Session, run: str | None) -> dt.datetime | None:
    """When ``run`` is a load test running now (its accounts listed and not expired), until
    when its accounts may live; else None."""
    if not run or not RUN_NAME.match(run):
        return None
    return db.scalar(
        select(func.min(LoadTestAccount.expires_at)).where(
            LoadTestAccount.run == run, LoadTestAccount.expires_at > func.now()
        )
    )


def create_user(
    db: Session, username: str, timezone: str, max_users: int, *, load_run: str | None = None
) -> tuple[User, str]:
    """Create an account and return it with its sign-in key (shown once, stored hashed).

    ``load_run``: the sign-up is a virtual newcomer of that load test (the live site's nginx
    says so only for requests carrying the run's key: ``X-TAS-Load-Run``). While the run is
    live the account is listed as one of its accounts, so it is removed with them and, like
    them, does not count against (nor wait for room under) the cap; otherwise it is ignored.
    """
    db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SIGNUP_LOCK_KEY})
    load_until = live_load_run(db, load_run)
    if load_until is None and not signup_open(db, max_users):
        raise SignupClosed
    if find_user(db, username) is not None:
        raise UsernameTaken(suggest_usernames(db, username))
    key = new_signin_key()
    user = User(
        username=username,
        timezone=timezone if valid_time_zone(timezone) else "UTC",
        signin_key_hash=key_hash(key),
    )
    db.add(user)
    try:
        db.flush()
    except IntegrityError as exc:  # a concurrent sign-up took the name first
        db.rollback()
        raise UsernameTaken(suggest_usernames(db, username)) from exc
    if load_until is not None:
        db.add(LoadTestAccount(user_id=user.id, run=load_run, expires_at=load_until))
    return user, key


def verify_signin(db: Session, username: str, key: str) -> User | None:
    # FOR SHARE until the sign-in commits: a new key being made at the same moment either
    # waits for this session to exist (and then signs it out) or is seen by this check.
    user = db.scalar(
        select(User).where(func.lower(User.username) == username.lower()).with_for_update(read=True)
    )
    if user is None:
        # Same work either way, so timing doesn't tell which names exist.
        hmac.compare_digest(key_hash(key), key_hash("x"))
        return None
    return user if hmac.compare_digest(user.signin_key_hash, key_hash(key)) else None


def regenerate_key(db: Session, user: User) -> str:
    """A new key for ``user``; the old one stops working (the caller ends the sessions)."""
    key = new_signin_key()
    user.signin_key_hash = key_hash(key)
    db.flush()  # the row lock a concurrent sign-in with the old key waits for
    return key


def delete_account(db: Session, user_id: int) -> None:
    # Every person-owned table cascades from users, sessions included.
    db.execute(delete(User).where(User.id == user_id))
