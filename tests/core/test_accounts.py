"""Signing in at /accounts/login/, throttled failed sign-ins, and hashed API tokens."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from core.accounts.authentication import ApiTokenAuthentication
from core.accounts.models import ApiToken
from core.accounts.services import token_create
from tests.procs import run_manage

PASSWORD = "a-long-test-password-789"
LIMIT = settings.AXES_FAILURE_LIMIT
# A refused token: 403 while DRF's session class answers the challenge first, 401 with
# `WWW-Authenticate: Token` once the token class does; either way, never the data.
REFUSED = (401, 403)

pytestmark = pytest.mark.django_db


@pytest.fixture
def plain(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("plain", password=PASSWORD)


def sign_in(client: Client, username: str, password: str, address: str) -> int:
    response = client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)
    return response.status_code


def token_get(key: str, address: str, url: str = "/api/auth/tokens/") -> int:
    client = APIClient()
    response = client.get(url, HTTP_AUTHORIZATION=f"Token {key}", REMOTE_ADDR=address)
    return response.status_code


# --- Signing in ------------------------------------------------------------------------------


def test_the_login_page_renders_a_form(db: None) -> None:
    page = Client().get("/accounts/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<form method="post" action="/accounts/login/">' in html
    assert 'name="username"' in html
    assert 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


def test_a_non_staff_user_signs_in_and_uses_the_browsable_api_but_not_the_admin(plain: User) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "plain", "password": PASSWORD, "next": "/api/"})
    assert response.status_code == 302
    assert response["Location"] == "/api/"
    page = client.get("/api/sessions/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b"Session List" in page.content
    admin = client.get("/admin/")
    assert admin.status_code == 302
    assert admin["Location"].startswith("/admin/login/")


def test_a_wrong_password_shows_the_form_again_with_an_error(plain: User) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "plain", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


def test_sign_out_is_a_post_and_ends_the_session(plain: User) -> None:
    client = Client()
    client.force_login(plain)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session
    assert client.get("/")["Location"] == "/accounts/login/?next=/"


# --- Throttled failed sign-ins ---------------------------------------------------------------


def test_failed_sign_ins_lock_the_account_from_every_address(plain: User) -> None:
    client = Client()
    codes = [sign_in(client, "plain", "wrong", f"10.0.0.{n}") for n in range(1, LIMIT + 1)]
    # Each failure comes from another address, so only the account's count reaches the limit.
    assert codes == [200] * (LIMIT - 1) + [429]
    # Even the right password, from a fresh address, is refused until the cool-off ends.
    locked = client.post("/accounts/login/", {"username": "plain", "password": PASSWORD}, REMOTE_ADDR="10.9.9.9")
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in client.session


def test_failed_sign_ins_lock_the_address_for_every_account(plain: User) -> None:
    client = Client()
    codes = [sign_in(client, f"guess{n}", "wrong", "10.0.1.1") for n in range(LIMIT)]
    assert codes == [200] * (LIMIT - 1) + [429]
    assert sign_in(client, "plain", PASSWORD, "10.0.1.1") == 429
    # Another address signs the same account in.
    assert sign_in(client, "plain", PASSWORD, "10.0.1.2") == 302


def test_the_lockout_ends_after_the_cool_off(plain: User) -> None:
    client = Client()
    for _ in range(LIMIT):
        sign_in(client, "plain", "wrong", "10.0.2.1")
    assert sign_in(client, "plain", PASSWORD, "10.0.2.1") == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert sign_in(client, "plain", PASSWORD, "10.0.2.1") == 302


FAIL_IN_ANOTHER_PROCESS = """
from django.test import Client
client = Client(HTTP_HOST="localhost")
codes = [
    client.post("/accounts/login/", {"username": "plain", "password": "wrong"}, REMOTE_ADDR=f"10.0.13.{n}").status_code
    for n in range(1, LIMIT)
]
print(codes)
"""


@pytest.mark.django_db(transaction=True)
def test_failures_counted_in_another_process_hold_here(plain: User) -> None:
    done = run_manage(["shell", "-c", f"LIMIT = {LIMIT}\n" + FAIL_IN_ANOTHER_PROCESS])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str([200] * (LIMIT - 1))
    assert sign_in(Client(), "plain", "wrong", "10.0.13.99") == 429


def test_the_admin_login_is_throttled_too(operator: User) -> None:
    client = Client()
    codes = [
        client.post("/admin/login/", {"username": "op", "password": "wrong"}, REMOTE_ADDR="10.0.3.1").status_code
        for _ in range(LIMIT)
    ]
    assert codes == [200] * (LIMIT - 1) + [429]


def test_bad_tokens_lock_the_address_out_even_with_a_good_token(operator: User) -> None:
    good = token_create(user=operator, name="good").key
    codes = [token_get("0" * 40, "10.0.4.1") for _ in range(LIMIT)]
    assert all(code in REFUSED for code in codes[: LIMIT - 1]), codes
    assert codes[-1] == 429
    response = APIClient().get("/api/auth/tokens/", HTTP_AUTHORIZATION=f"Token {good}", REMOTE_ADDR="10.0.4.1")
    assert response.status_code == 429
    assert response.json()["code"] == "locked_out"
    assert response.json()["detail"].startswith("Too many failed sign-ins from this address")
    assert int(response["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    # Other addresses are not affected: a bad token names no account.
    assert token_get(good, "10.0.4.2") == 200
    # After the cool-off, the good token works from the locked address again.
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert token_get(good, "10.0.4.1") == 200


def test_failed_password_sign_ins_and_bad_tokens_add_up_per_address(plain: User) -> None:
    client = Client()
    for n in range(LIMIT - 1):
        assert sign_in(client, f"guess{n}", "wrong", "10.0.5.1") == 200
    assert token_get("1" * 40, "10.0.5.1") == 429


# --- API tokens ------------------------------------------------------------------------------


def test_a_token_is_created_once_listed_without_its_key_and_revoked(plain: User) -> None:
    api = APIClient()
    api.force_authenticate(user=plain)
    created = api.post("/api/auth/tokens/", {"name": "laptop"}, format="json")
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert len(key) == 40
    assert body["name"] == "laptop"
    assert body["prefix"] == key[:8]
    assert body["last_used"] is None

    row = ApiToken.objects.get(pk=body["id"])
    assert row.key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM core_apitoken")
        assert all(key not in str(value) for line in cursor.fetchall() for value in line)

    listed = api.get("/api/auth/tokens/").json()
    assert listed["count"] == 1
    assert listed["results"] == [
        {"id": body["id"], "name": "laptop", "prefix": key[:8], "created": body["created"], "last_used": None}
    ]

    assert token_get(key, "10.0.6.1") == 200
    assert api.delete(f"/api/auth/tokens/{body['id']}/").status_code == 204
    assert not ApiToken.objects.filter(pk=body["id"]).exists()
    assert token_get(key, "10.0.6.1") in REFUSED


def test_another_users_token_is_not_found_and_not_listed(plain: User, operator: User) -> None:
    theirs = token_create(user=operator, name="operator's").token
    api = APIClient()
    api.force_authenticate(user=plain)
    assert api.get("/api/auth/tokens/").json()["count"] == 0
    response = api.delete(f"/api/auth/tokens/{theirs.pk}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert api.delete("/api/auth/tokens/not-a-number/").status_code == 404
    assert ApiToken.objects.filter(pk=theirs.pk).exists()


def test_a_token_needs_a_name(plain: User) -> None:
    api = APIClient()
    api.force_authenticate(user=plain)
    for name in ("", "   "):
        response = api.post("/api/auth/tokens/", {"name": name}, format="json")
        assert response.status_code == 400
        assert list(response.json()["fields"]) == ["name"]
    assert api.post("/api/auth/tokens/", {"name": "x" * 101}, format="json").json()["fields"]["name"] == [
        "Ensure this field has no more than 100 characters."
    ]
    assert ApiToken.objects.count() == 0


def test_the_token_api_needs_a_signed_in_caller(db: None) -> None:
    assert APIClient().get("/api/auth/tokens/").status_code in REFUSED
    assert APIClient().post("/api/auth/tokens/", {"name": "x"}, format="json").status_code in REFUSED


def test_a_token_of_an_inactive_user_is_refused(plain: User) -> None:
    key = token_create(user=plain, name="old").key
    plain.is_active = False
    plain.save()
    assert token_get(key, "10.0.7.1") in REFUSED


def test_a_malformed_token_header_is_refused(plain: User) -> None:
    response = APIClient().get("/api/auth/tokens/", HTTP_AUTHORIZATION="Token two words", REMOTE_ADDR="10.0.8.1")
    assert response.status_code in REFUSED
    assert "one key" in response.json()["detail"]


def token_updates(queries: CaptureQueriesContext) -> int:
    return sum(1 for query in queries.captured_queries if query["sql"].startswith('UPDATE "core_apitoken"'))


def test_last_used_is_written_at_most_once_a_minute_in_one_update(plain: User) -> None:
    key = token_create(user=plain, name="busy").key
    with CaptureQueriesContext(connection) as first:
        assert token_get(key, "10.0.9.1") == 200
    assert token_updates(first) == 1
    used = ApiToken.objects.get().last_used
    assert used is not None
    with CaptureQueriesContext(connection) as second:
        assert token_get(key, "10.0.9.1") == 200
    assert token_updates(second) == 0
    assert ApiToken.objects.get().last_used == used
    ApiToken.objects.update(last_used=used - timedelta(minutes=2))
    with CaptureQueriesContext(connection) as later:
        assert token_get(key, "10.0.9.1") == 200
    assert token_updates(later) == 1
    last_used = ApiToken.objects.get().last_used
    assert last_used is not None
    assert last_used > used


# --- manage.py drf_create_token --------------------------------------------------------------


def test_drf_create_token_prints_a_working_key_once(plain: User, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("drf_create_token", "plain")
    line = capsys.readouterr().out.strip()
    prefix, key, suffix = line[: len("Generated token ")], line[16:56], line[56:]
    assert (prefix, suffix) == ("Generated token ", " for user plain")
    assert token_get(key, "10.0.10.1") == 200
    call_command("drf_create_token", "plain")
    second = capsys.readouterr().out.strip()[16:56]
    assert second != key
    assert ApiToken.objects.filter(user=plain).count() == 2


def test_drf_create_token_reset_revokes_the_others(plain: User, capsys: pytest.CaptureFixture[str]) -> None:
    old = token_create(user=plain, name="old").key
    call_command("drf_create_token", "-r", "plain")
    new = capsys.readouterr().out.strip()[16:56]
    assert ApiToken.objects.filter(user=plain).count() == 1
    assert token_get(old, "10.0.11.1") in REFUSED
    assert token_get(new, "10.0.11.2") == 200


def test_drf_create_token_refuses_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="User nobody does not exist"):
        call_command("drf_create_token", "nobody")
    assert ApiToken.objects.count() == 0


def test_the_admin_lists_tokens_without_their_keys(operator: User, plain: User) -> None:
    key = token_create(user=plain, name="laptop").key
    client = Client()
    client.force_login(operator)
    page = client.get("/admin/core/apitoken/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "laptop" in html
    assert key[:8] in html
    assert key not in html
    assert client.get("/admin/core/apitoken/add/").status_code == 403


def test_the_token_class_challenges_with_token() -> None:
    assert ApiTokenAuthentication().authenticate_header(Request(APIRequestFactory().get("/"))) == "Token"
