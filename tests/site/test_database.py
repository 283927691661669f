"""The SQLite pragmas Agent Chat relies on are in force on a live connection."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def sqlite_only() -> None:
    if connection.vendor != "sqlite":
        pytest.skip(f"SQLite pragmas do not apply to the {connection.vendor} leg")


def pragma(name: str) -> object:
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        row = cursor.fetchone()
    assert row is not None
    return row[0]


@pytest.mark.usefixtures("sqlite_only")
def test_sqlite_pragmas_in_force() -> None:
    assert pragma("journal_mode") == "wal"
    assert pragma("foreign_keys") == 1
    assert pragma("busy_timeout") == settings.SQLITE_BUSY_TIMEOUT_MS
    # 1 = NORMAL, 2 = FULL
    assert pragma("synchronous") == {"NORMAL": 1, "FULL": 2}[settings.SQLITE_SYNCHRONOUS]


@pytest.mark.usefixtures("sqlite_only")
def test_sqlite_transactions_begin_immediate() -> None:
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    # The test database is a real file, so other processes can open it.
    assert str(connection.settings_dict["NAME"]).endswith(".sqlite3")


@pytest.mark.django_db(transaction=True)
def test_foreign_keys_enforced() -> None:
    """Django declares SQLite foreign keys DEFERRED, so the check fires at commit."""
    from django.db import IntegrityError, transaction

    from core.models import ModelRoute

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelRoute.objects.create(
            alias="dangling", provider_id=999_999, model_id="m", context_window_tokens=1, max_output_tokens=1
        )
