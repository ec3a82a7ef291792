"""SQLAlchemy 2.0 typed models for the whole product.

Every row a person owns carries ``user_id NOT NULL`` so that every query can (and must)
filter on it; cross-user foreign keys are made impossible with composite keys
``(user_id, id)`` where a row points at another person-owned row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import CheckConstraint
from sqlalchemy import DateTime
from sqlalchemy import Double
from sqlalchemy import ForeignKey
from sqlalchemy import ForeignKeyConstraint
from sqlalchemy import Identity
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import MetaData
from sqlalchemy import SmallInteger
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy import func
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The largest PostgreSQL BIGINT: an id or number past it is no row of ours.
BIGINT_MAX = 2**63 - 1

TASK_KINDS = ("one-time", "recurring", "routine", "project")
# Why an attempt was cancelled: the old app's categories (its keys, our labels).
CANCEL_CATEGORIES = {
    "failed_to_complete": "Couldn't finish it",
    "deferred_to_plan": "Put off to a later plan",
    "did_while_another_active": "Did it while another task was running",
    "accidental_initialization": "Started by mistake",
    "development_test": "Only trying the app out",
    "other": "Other",
}
ATTEMPT_STATUSES = ("initialized", "started", "paused", "completed", "cancelled")
EMOTION_PHASES = ("before", "after")

# Limits shared by the database checks and the forms.
USERNAME_MAX = 40
TASK_NAME_MAX = 200
DESCRIPTION_MAX = 5000
NOTES_MAX = 10000
EMOTION_NAME_MAX = 60
CONTEXT_MAX = 200
CANCEL_CATEGORY_MAX = 60
GROUP_NAME_MAX = 100

# How a task can repeat (none: it doesn't): every day, or on the chosen weekdays.
ROUTINE_FREQUENCIES = ("daily", "weekdays")
# ``tasks.routine_weekdays``: a bit per weekday, Monday (0) = 1 … Sunday (6) = 64.
EVERY_DAY = 0b1111111

PREDICTION_SCALES = (
    "expected_aversion",
    "expected_relief",
    "expected_cognitive_load",
    "expected_emotional_load",
    "expected_physical_load",
    "motivation",
)
OUTCOME_SCALES = (
    "actual_relief",
    "actual_cognitive_load",
    "actual_emotional_load",
    "actual_physical_load",
)


# Literal SQL, not bound parameters nor literal_column: the index expression and the
# query's must be written alike, and an Index finds its table only through real columns.
SEARCH_CONFIG = text("'simple'::regconfig")


def search_vector(*columns: Any) -> Any:
    """The words of ``columns`` for full-text search, as the search indexes hold them.

    The ``simple`` configuration lowercases and keeps every word (no stemming, no stop
    words), so a search works alike in any language and a prefix query finds a word by its
    start. Queries must use this very expression for PostgreSQL to use the index.
    """
    words = columns[0]
    for column in columns[1:]:
        words = words.op("||")(text("' '")).op("||")(column)
    # Angle brackets become spaces: PostgreSQL's parser takes "<...>" for an HTML tag and
    # drops the words in it ("x<y and y>z"), and all of "<script>...</script>".
    return func.to_tsvector(SEARCH_CONFIG, func.translate(words, text("'<>'"), text("'  '")))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _scale_check(column: str, high: int = 100) -> CheckConstraint:
    return CheckConstraint(f"{column} BETWEEN 0 AND {high}", name=f"{column}_range")


def _length_check(column: str, limit: int) -> CheckConstraint:
    return CheckConstraint(f"char_length({column}) <= {limit}", name=f"{column}_length")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Usernames are unique case-insensitively; the database enforces it.
        Index("uq_users_lower_username", text("lower(username)"), unique=True),
        CheckConstraint(
            f"char_length(username) BETWEEN 1 AND {USERNAME_MAX}", name="username_length"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text, server_default="UTC")
    # SHA-256 of the sign-in key; the key itself is shown once and never stored.
    signin_key_hash: Mapped[str] = mapped_column(Text)
    # Per-person recommendation filter (measures and maximum duration).
    preferences: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    # Bumped by statement-level triggers (migration 0002) whenever the person's tasks or
    # attempts change, in the same transaction: a cached page computed at an older version
    # is never shown again. Nothing in the app writes it.
    data_version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # Bumped by the same triggers (migration 0004), except by a change that touches open
    # attempts only (initialized, started or paused before and after): what the dashboard
    # shows besides its open attempts is still current while this is unchanged.
    history_version: Mapped[int] = mapped_column(BigInteger, server_default="0")


class PageCache(Base):
    """The figures a page last computed for a person, valid for one ``data_version``.

    One row per person and page (dashboard, analytics): the key says for which local day,
    time zone and chart choices ``body`` (JSON) was computed.

    Unlogged (migration 0012): a write skips PostgreSQL's write-ahead log, and after a
    crash of the database the table is empty again; a missing row is only a miss.
    """

    __tablename__ = "page_cache"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    page: Mapped[str] = mapped_column(Text, primary_key=True)
    data_version: Mapped[int] = mapped_column(BigInteger)
    # The person's history version the page was computed at; none for pages that keep
    # figures, and for rows older than migration 0004.
    history_version: Mapped[int | None] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class UserSession(Base):
    """A browser session; the cookie carries a random token whose hash is the key here.

    Keeping sessions server-side lets sign-out (and account deletion) end them for real.
    """

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user_id", "user_id"),)

    token_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[dt.datetime]


class Emotion(Base):
    __tablename__ = "emotions"
    __table_args__ = (
        UniqueConstraint("user_id", "id"),
        Index("uq_emotions_user_id_lower_name", "user_id", text("lower(name)"), unique=True),
        CheckConstraint(f"char_length(name) BETWEEN 1 AND {EMOTION_NAME_MAX}", name="name_length"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class Task(Base):
    """A task template. Editing bumps ``version``; tasks with history are archived."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("user_id", "id"),
        UniqueConstraint("user_id", "legacy_id"),
        CheckConstraint(_in_list("kind", TASK_KINDS), name="kind_allowed"),
        CheckConstraint(f"char_length(name) BETWEEN 1 AND {TASK_NAME_MAX}", name="name_length"),
        _length_check("description", DESCRIPTION_MAX),
        CheckConstraint("default_estimate_minutes >= 0", name="estimate_not_negative"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint(
            f"routine_frequency IS NULL OR ({_in_list('routine_frequency', ROUTINE_FREQUENCIES)}"
            f" AND routine_weekdays BETWEEN 1 AND {EVERY_DAY}"
            " AND routine_time IS NOT NULL AND routine_since IS NOT NULL)",
            name="routine_valid",
        ),
        Index(
            "ix_tasks_user_id_active",
            "user_id",
            "name",
            postgresql_where=text("archived_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    kind: Mapped[str] = mapped_column(Text, server_default="one-time")
    default_estimate_minutes: Mapped[float] = mapped_column(Double, server_default="0")
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    archived_at: Mapped[dt.datetime | None]
    # The old app's id (``t1763738425``) for imported rows; unique per person.
    legacy_id: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # A routine (see service.routines): it repeats every day or on the chosen weekdays
    # (bits of ``routine_weekdays``) at ``routine_time``, the person's local time of day.
    # None: the task doesn't repeat. ``routine_since``: when the schedule was saved;
    # occurrences before it neither fall due nor count as missed.
    routine_frequency: Mapped[str | None] = mapped_column(Text)
    routine_weekdays: Mapped[int | None] = mapped_column(SmallInteger)
    routine_time: Mapped[dt.time | None]
    routine_since: Mapped[dt.datetime | None]


class TaskEmotion(Base):
    """The emotions a person wants to track for a task."""

    __tablename__ = "task_emotions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id", "task_id"], ["tasks.user_id", "tasks.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["user_id", "emotion_id"], ["emotions.user_id", "emotions.id"], ondelete="CASCADE"
        ),
        Index("ix_task_emotions_emotion_id", "emotion_id"),
    )

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    emotion_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)


class Attempt(Base):
    """One go at a task: initialized → started ⇄ paused → completed, or cancelled."""

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("user_id", "id"),
        UniqueConstraint("user_id", "legacy_id"),
        ForeignKeyConstraint(
            ["user_id", "task_id"], ["tasks.user_id", "tasks.id"], ondelete="CASCADE"
        ),
        CheckConstraint(_in_list("status", ATTEMPT_STATUSES), name="status_allowed"),
        *(_scale_check(c) for c in PREDICTION_SCALES + OUTCOME_SCALES),
        _scale_check("completion_percent", 200),
        CheckConstraint("time_estimate_minutes >= 0", name="estimate_not_negative"),
        CheckConstraint("minutes_spent >= 0", name="minutes_spent_not_negative"),
        _length_check("description", DESCRIPTION_MAX),
        _length_check("notes", NOTES_MAX),
        _length_check("cancel_reason", NOTES_MAX),
        _length_check("cancel_category", CANCEL_CATEGORY_MAX),
        _length_check("physical_context", CONTEXT_MAX),
        # Only one attempt per person can be running at a time.
        Index(
            "uq_attempts_user_id_started",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'started'"),
        ),
        # Dashboard: open attempts, and the latest completed ones.
        Index(
            "ix_attempts_user_id_open",
            "user_id",
            "initialized_at",
            postgresql_where=text("status IN ('initialized', 'started', 'paused')"),
        ),
        Index("ix_attempts_user_id_completed_at", "user_id", "completed_at"),
        # History: every attempt, newest first, a page at a time (keyset on these columns).
        Index("ix_attempts_user_id_initialized_at_id", "user_id", "initialized_at", "id"),
        Index("ix_attempts_task_id", "task_id"),
        # History's "Postponed" filter: the few postponed attempts, in page order.
        Index(
            "ix_attempts_user_id_postponed",
            "user_id",
            "initialized_at",
            "id",
            postgresql_where=text("postponed_at IS NOT NULL"),
        ),
        # One attempt per routine occurrence: concurrent dashboard loads cannot make two.
        Index(
            "uq_attempts_task_id_routine_occurrence",
            "task_id",
            "routine_occurrence",
            unique=True,
            postgresql_where=text("routine_occurrence IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # No key of its own to users: the composite key to the person's task implies one
    # (and cascades through it), and each key costs a query per inserted row.
    user_id: Mapped[int] = mapped_column(BigInteger)
    task_id: Mapped[int] = mapped_column(BigInteger)
    task_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, server_default="initialized")

    initialized_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[dt.datetime | None]  # first start
    resumed_at: Mapped[dt.datetime | None]  # start of the running interval, if running
    completed_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    # When an open attempt should be done by (optional); overdue = open and past it.
    due_at: Mapped[dt.datetime | None]
    # Postponed since (none: not postponed), and until when (optional; once that time has
    # come the attempt is ready again). Each postponement's reason is kept in ``extra``
    # (``postponements``). Meaningful for open attempts only: finishing clears both.
    postponed_at: Mapped[dt.datetime | None]
    postponed_until: Mapped[dt.datetime | None]
    # Minutes in closed started intervals; the running one is added when it closes.
    minutes_spent: Mapped[float] = mapped_column(Double, server_default="0")

    # Prediction (recorded when initializing).
    expected_aversion: Mapped[int | None] = mapped_column(SmallInteger)
    expected_relief: Mapped[int | None] = mapped_column(SmallInteger)
    expected_cognitive_load: Mapped[int | None] = mapped_column(SmallInteger)
    expected_emotional_load: Mapped[int | None] = mapped_column(SmallInteger)
    expected_physical_load: Mapped[int | None] = mapped_column(SmallInteger)
    motivation: Mapped[int | None] = mapped_column(SmallInteger)
    time_estimate_minutes: Mapped[float | None] = mapped_column(Double)
    physical_context: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")

    # Outcome (recorded when completing) or cancellation.
    actual_relief: Mapped[int | None] = mapped_column(SmallInteger)
    actual_cognitive_load: Mapped[int | None] = mapped_column(SmallInteger)
    actual_emotional_load: Mapped[int | None] = mapped_column(SmallInteger)
    actual_physical_load: Mapped[int | None] = mapped_column(SmallInteger)
    completion_percent: Mapped[int | None] = mapped_column(SmallInteger)
    notes: Mapped[str] = mapped_column(Text, server_default="")
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # One of CANCEL_CATEGORIES (the old app's keys), or a key of the old app's own
    # categories (imported); none for attempts cancelled before categories existed.
    cancel_category: Mapped[str | None] = mapped_column(Text)

    # Measures, computed once when the outcome is saved (see db.measures).
    stress: Mapped[float | None] = mapped_column(Double)
    net_wellbeing: Mapped[float | None] = mapped_column(Double)
    net_wellbeing_normalized: Mapped[float | None] = mapped_column(Double)
    stress_efficiency: Mapped[float | None] = mapped_column(Double)
    relief_surprise: Mapped[float | None] = mapped_column(Double)
    delay_minutes: Mapped[float | None] = mapped_column(Double)
    procrastination_score: Mapped[float | None] = mapped_column(Double)
    proactive_score: Mapped[float | None] = mapped_column(Double)
    time_accuracy: Mapped[float | None] = mapped_column(Double)
    behavioral_score: Mapped[float | None] = mapped_column(Double)
    relief_duration_score: Mapped[float | None] = mapped_column(Double)

    # Anything else worth keeping (legacy blocker types, pause and postpone reasons, ...).
    extra: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    legacy_id: Mapped[str | None] = mapped_column(Text)
    # The local date of the routine occurrence this attempt was made for, if any.
    routine_occurrence: Mapped[dt.date | None]


# What the history's search looks through: the attempt's own words, and its task's.
ATTEMPT_WORDS = search_vector(
    Attempt.description, Attempt.notes, func.coalesce(Attempt.cancel_reason, text("''"))
)
TASK_WORDS = search_vector(Task.name, Task.description)
Index("ix_attempts_search", ATTEMPT_WORDS, postgresql_using="gin")
Index("ix_tasks_search", TASK_WORDS, postgresql_using="gin")


class AttemptEmotion(Base):
    """Emotions felt before (at initialize) or after (at completion) an attempt."""

    __tablename__ = "attempt_emotions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id", "attempt_id"], ["attempts.user_id", "attempts.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["user_id", "emotion_id"], ["emotions.user_id", "emotions.id"], ondelete="CASCADE"
        ),
        CheckConstraint(_in_list("phase", EMOTION_PHASES), name="phase_allowed"),
        _scale_check("intensity"),
        Index("ix_attempt_emotions_emotion_id", "emotion_id"),
    )

    attempt_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    emotion_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    phase: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    # How strongly it was felt, 0–100; none for rows older than migration 0010.
    intensity: Mapped[int | None] = mapped_column(SmallInteger)


class TaskGroup(Base):
    """A person's group of tasks (the old app's "jobs"); a task can be in several."""

    __tablename__ = "task_groups"
    __table_args__ = (
        UniqueConstraint("user_id", "id"),
        UniqueConstraint("user_id", "legacy_id"),
        Index("uq_task_groups_user_id_lower_name", "user_id", text("lower(name)"), unique=True),
        CheckConstraint(f"char_length(name) BETWEEN 1 AND {GROUP_NAME_MAX}", name="name_length"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    # The old app's job id for imported groups; unique per person.
    legacy_id: Mapped[str | None] = mapped_column(Text)


class TaskGroupTask(Base):
    """A task in a group; both the person's own (composite keys)."""

    __tablename__ = "task_group_tasks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id", "group_id"], ["task_groups.user_id", "task_groups.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["user_id", "task_id"], ["tasks.user_id", "tasks.id"], ondelete="CASCADE"
        ),
        Index("ix_task_group_tasks_task_id", "task_id"),
    )

    group_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)


class Note(Base):
    """A free-text note of the person's, timestamped; written on an attempt or on nothing.

    ``attempt_id`` has a plain key to attempts (``ON DELETE SET NULL`` of a composite key
    needs PostgreSQL 15, the servers run 14): the app only links a note to an attempt it
    has looked up among the person's own. Deleting the attempt keeps the note, unlinked.
    """

    __tablename__ = "notes"
    __table_args__ = (
        CheckConstraint(f"char_length(body) BETWEEN 1 AND {NOTES_MAX}", name="body_length"),
        # The Notes page: newest first, a page at a time (keyset on these columns).
        Index("ix_notes_user_id_created_at_id", "user_id", "created_at", "id"),
        Index("ix_notes_attempt_id", "attempt_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class ImportRun(Base):
    """A record of each legacy-folder import, with its report."""

    __tablename__ = "import_runs"
    __table_args__ = (Index("ix_import_runs_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    dry_run: Mapped[bool] = mapped_column(Boolean, server_default="false")
    report: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class LoadTestAccount(Base):
    """An account made by ``invoke loadtest --host`` for one run, and until when it may live.

    Only accounts listed here are ever removed by the load test's clean-up (never by a name
    pattern: a person could have chosen a name that looks like one), and they do not count
    against ``MAX_USERS``: a load test never closes sign-up for real people. ``expires_at``
    lets the nightly clean-up remove what a run that died could not.
    """

    __tablename__ = "load_test_accounts"
    __table_args__ = (
        Index("ix_load_test_accounts_run", "run"),
        Index("ix_load_test_accounts_expires_at", "expires_at"),
    )

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    run: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime]
