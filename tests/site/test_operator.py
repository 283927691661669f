"""`ensure_operator` creates the operator once, without prompting, and never changes it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.procs import run_manage

pytestmark = pytest.mark.django_db(transaction=True)


def test_generates_password_once_then_leaves_account_alone() -> None:
    first = run_manage(["ensure_operator"], env={"AGENTCHAT_OPERATOR_PASSWORD": ""})
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created operator account 'operator' with password: ")
    password = first.stdout.split("password: ", 1)[1].split()[0]
    user = User.objects.get(username="operator")
    assert user.is_superuser
    assert user.is_staff
    assert user.check_password(password)

    second = run_manage(["ensure_operator"], env={"AGENTCHAT_OPERATOR_PASSWORD": "another-password-9876"})
    assert second.returncode == 0
    assert second.stdout.strip() == "operator account 'operator' already exists; left unchanged"
    user.refresh_from_db()
    assert user.check_password(password)
    assert User.objects.count() == 1


def test_password_from_environment() -> None:
    result = run_manage(
        ["ensure_operator", "--username", "alice"], env={"AGENTCHAT_OPERATOR_PASSWORD": "correct-horse-battery-42"}
    )
    assert result.returncode == 0, result.stderr
    assert "with the password from AGENTCHAT_OPERATOR_PASSWORD" in result.stdout
    assert "correct-horse-battery-42" not in result.stdout
    assert User.objects.get(username="alice").check_password("correct-horse-battery-42")


def test_weak_password_is_refused_and_nothing_written() -> None:
    result = run_manage(["ensure_operator"], env={"AGENTCHAT_OPERATOR_PASSWORD": "123"})
    assert result.returncode == 1
    assert "AGENTCHAT_OPERATOR_PASSWORD: This password is too short" in result.stderr
    assert not User.objects.filter(username="operator").exists()


def test_an_account_the_migration_made_without_a_password_gets_one_printed_once() -> None:
    # What the ownership migration leaves when records existed before any account did.
    User.objects.create_superuser(username="operator", password=None, email="")
    assert not User.objects.get(username="operator").has_usable_password()
    first = run_manage(["ensure_operator"], env={"AGENTCHAT_OPERATOR_PASSWORD": ""})
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(
        "set the first password of operator account 'operator' (it held the records made before accounts "
        "and had none) with password: "
    )
    password = first.stdout.split("password: ", 1)[1].split()[0]
    assert User.objects.get(username="operator").check_password(password)
    second = run_manage(["ensure_operator"], env={"AGENTCHAT_OPERATOR_PASSWORD": ""})
    assert second.stdout.strip() == "operator account 'operator' already exists; left unchanged"
    assert User.objects.get(username="operator").check_password(password)
