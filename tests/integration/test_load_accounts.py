"""The accounts a load test makes on a server (``flask load-accounts``, db/load_accounts.py):
made in bulk with a history, sign-in works with the derived key, removed by run only, never
counted against the sign-up cap, and swept when their run died."""

from __future__ import annotations

import json

import psycopg
import pytest

from db import load_accounts
from db.engine import make_engine
from service import create_app
from tests.conftest import app_config

pytestmark = pytest.mark.integration


def _sql(database_url: str, query: str, *params: object) -> list[tuple]:
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_a_run_makes_people_with_history_who_can_sign_in_with_their_derived_key(
    engine, database_url, client
):
    assert load_accounts.seed(engine, run="r1abc", count=3, secret="s3cret", history=12) == 3
    people = _sql(
        database_url,
        "SELECT u.username, count(DISTINCT t.id), count(a.id) FROM users u"
        " JOIN tasks t ON t.user_id = u.id JOIN attempts a ON a.task_id = t.id"
        " GROUP BY u.username ORDER BY u.username",
    )
    assert [p[0] for p in people] == [f"load-r1abc-0000{n}" for n in range(3)]
    assert all(tasks == 6 and attempts == 12 for _, tasks, attempts in people)

    name = "load-r1abc-00001"
    key = load_accounts.load_user_key("s3cret", name)
    page = client.get("/signin")
    assert page.status_code == 200
    from tests.conftest import csrf_token

    signed_in = client.post(
        "/signin", data={"username": name, "key": key, "csrf_token": csrf_token(client)}
    )
    assert signed_in.status_code == 302
    assert "Answer email" in client.get("/").get_data(as_text=True)


def test_removing_a_run_deletes_only_its_accounts_never_a_look_alike(engine, database_url):
    load_accounts.seed(engine, run="keep1", count=2, secret="a", history=1)
    load_accounts.seed(engine, run="gone1", count=2, secret="b", history=1)
    # A person who picked a name like a load account's (the next number of that run).
    _sql(
        database_url,
        "INSERT INTO users (username, signin_key_hash) VALUES ('load-gone1-00002', 'x')",
    )
    assert load_accounts.remove_run(engine, "gone1") == 2
    left = [r[0] for r in _sql(database_url, "SELECT username FROM users ORDER BY username")]
    assert left == ["load-gone1-00002", "load-keep1-00000", "load-keep1-00001"]
    assert load_accounts.count(engine) == 2 and load_accounts.count(engine, "gone1") == 0
    assert load_accounts.remove_run(engine, "gone1") == 0  # twice: nothing more


def test_a_second_seed_of_the_same_run_keeps_what_is_there(engine):
    assert load_accounts.seed(engine, run="twice1", count=2, secret="a", history=1) == 2
    assert load_accounts.seed(engine, run="twice1", count=3, secret="a", history=1) == 1
    assert load_accounts.count(engine, "twice1") == 3


def test_expired_runs_are_swept_and_live_ones_kept(engine, database_url):
    load_accounts.seed(engine, run="died1", count=2, secret="a", history=1, ttl_seconds=60)
    load_accounts.seed(engine, run="live1", count=1, secret="a", history=1)
    _sql(
        database_url,
        "UPDATE load_test_accounts SET expires_at = now() - interval '1 second'"
        " WHERE run = 'died1'",
    )
    assert load_accounts.remove_expired(engine) == 2
    assert load_accounts.count(engine) == 1 and load_accounts.count(engine, "live1") == 1


def test_load_accounts_never_close_sign_up_for_people(database_url):
    app = create_app(app_config(database_url, MAX_USERS=1))
    engine = make_engine(database_url)
    try:
        load_accounts.seed(engine, run="cap1", count=5, secret="a", history=1)
        client = app.test_client()
        page = client.get("/signup").get_data(as_text=True)
        assert "Sign-up is closed for now." not in page
        from tests.conftest import Browser

        Browser(client).signup("first")  # the one real person the cap allows
        again = app.test_client().get("/signup").get_data(as_text=True)
        assert "Sign-up is closed for now." in again
    finally:
        engine.dispose()
        app.extensions["db_engine"].dispose()


def _signup_as_newcomer(client, username: str, run: str) -> str:
    from tests.conftest import CSRF
    from tests.conftest import csrf_token

    form = client.get("/signup", headers={"X-TAS-Load-Run": run}).get_data(as_text=True)
    token = CSRF.search(form)
    response = client.post(
        "/signup",
        data={
            "username": username,
            "timezone": "UTC",
            "csrf_token": token.group(1) if token else csrf_token(client),
        },
        headers={"X-TAS-Load-Run": run},
    )
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_live_runs_newcomers_are_its_accounts_and_go_with_it(database_url):
    """Virtual people signing up during a load test (nginx names the run for requests with
    its key) are listed with the run: the cap neither counts nor stops them, and the run's
    clean-up removes them. A run that is not live (unknown, expired) vouches for nobody."""
    app = create_app(app_config(database_url, MAX_USERS=0))
    engine = make_engine(database_url)
    try:
        load_accounts.seed(engine, run="arrive1", count=1, secret="a", history=1)
        load_accounts.seed(engine, run="gone1", count=1, secret="a", history=1)
        _sql(
            database_url,
            "UPDATE load_test_accounts SET expires_at = now() - interval '1 second'"
            " WHERE run = 'gone1'",
        )
        page = _signup_as_newcomer(app.test_client(), "load-arrive1-n1", "arrive1")
        assert 'id="signin-key"' in page
        assert load_accounts.count(engine, "arrive1") == 2
        for run in ("gone1", "nosuchrun", "NOT A RUN; --"):
            refused = _signup_as_newcomer(app.test_client(), f"stranger-{len(run)}", run)
            assert "Sign-up is closed for now." in refused
        assert _sql(
            database_url, "SELECT count(*) FROM users WHERE left(username, 9) = 'stranger-'"
        ) == [(0,)]
        assert load_accounts.remove_run(engine, "arrive1") == 2
        assert _sql(
            database_url, "SELECT count(*) FROM users WHERE username = 'load-arrive1-n1'"
        ) == [(0,)]
    finally:
        engine.dispose()
        app.extensions["db_engine"].dispose()


def test_the_server_command_takes_the_secret_on_stdin_and_says_what_it_did(app, database_url):
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=["load-accounts", "create", "--run", "cli1", "--count", "2", "--history", "1"],
        input="from-stdin\n",
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.output.strip().splitlines()[-1]) == {"run": "cli1", "created": 2}
    hashes = _sql(database_url, "SELECT signin_key_hash FROM users ORDER BY username")
    key = load_accounts.load_user_key("from-stdin", "load-cli1-00000")
    assert hashes[0][0] == load_accounts.key_hash(key)

    gone = runner.invoke(args=["load-accounts", "remove", "--run", "cli1"])
    assert gone.exit_code == 0, gone.output
    assert json.loads(gone.output) == {"removed": 2, "left": 0}


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["create", "--run", "BAD RUN", "--count", "2"], "s\n", "a run's name is 4-32"),
        (["create", "--run", "okrun1", "--count", "2"], "\n", "a run needs its secret"),
        (["create", "--run", "okrun1", "--count", "0"], "s\n", "0 is not in the range"),
        (["remove"], "", "say which: --run NAME or --expired"),
        (["remove", "--run", "x1x1", "--expired"], "", "say which"),
    ],
)
def test_the_server_command_refuses_bad_input_with_a_sentence(
    app, database_url, args, stdin, message
):
    result = app.test_cli_runner().invoke(args=["load-accounts", *args], input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert _sql(database_url, "SELECT count(*) FROM users") == [(0,)]
