"""Databases for the workloads: a fresh one per workload, large fixtures loaded in bulk.

SQLite: the harness migrates one template file per run and level, and each workload starts on
its own copy (`Databases.fresh`), so no workload sees another's rows. Large fixtures are built
once per run and copied: a file does not depend on the `synchronous` level, which is a
per-connection setting. PostgreSQL: the bench database is migrated once and flushed between
workloads.

Fixtures are written with raw multi-row inserts (`executemany` in big transactions on SQLite,
`COPY` on PostgreSQL) and their counters are then fixed with one UPDATE; the operations the
workloads measure always go through the public services and selectors.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.core.management import call_command
from django.db import connection, connections, models, transaction

Meta = dict[str, Any]
BENCH_USERNAME = "bench"
ROUTE_ALIAS = "replay"


def seed() -> None:
    """What every bench database holds before its workload: the operator and a default route."""
    from django.contrib.auth.models import User

    from core.models import ModelRoute, Provider, ProviderKind

    User.objects.create_superuser(username=BENCH_USERNAME, email="", password=None)
    provider = Provider.objects.create(name="replay", kind=ProviderKind.REPLAY)
    ModelRoute.objects.create(
        alias=ROUTE_ALIAS,
        provider=provider,
        model_id="replay-1",
        context_window_tokens=200_000,
        max_output_tokens=8_000,
        is_default=True,
    )


def sqlite_checkpoint() -> None:
    """Fold the WAL into the main file so the file alone is the whole database."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class Databases:
    """Switches the process's Django connection between fresh databases."""

    def __init__(self, *, work: Path, fixtures: Path) -> None:
        self.vendor = connection.vendor
        self.work = work
        self.fixtures = fixtures
        self.template = Path(connection.settings_dict["NAME"]) if self.vendor == "sqlite" else None
        self.current: Path | None = self.template

    def prepare(self) -> None:
        """Migrate once (the template file on SQLite, the bench database on PostgreSQL)."""
        if self.vendor == "sqlite":
            assert self.template is not None
            connection.close()
            _remove(self.template)
        call_command("migrate", interactive=False, verbosity=0)
        if self.vendor == "sqlite":
            seed()
            sqlite_checkpoint()
            connection.close()

    def _switch(self, path: Path) -> None:
        for conn in connections.all():
            conn.close()
        connection.settings_dict["NAME"] = str(path)
        self.current = path

    def _building(self, done: bool = False) -> None:
        """While a fixture loads: no journal, no fsync, a big page cache (a failed build is simply
        rebuilt next run). Afterwards the file goes back to WAL, as the application runs it."""
        with connection.cursor() as cursor:
            if done:
                cursor.execute("PRAGMA journal_mode = WAL")
                return
            cursor.execute("PRAGMA journal_mode = OFF")
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.execute("PRAGMA cache_size = -262144")

    def fresh(self, name: str) -> None:
        """Point the connection at a new database holding only the seed."""
        if self.vendor == "sqlite":
            assert self.template is not None
            target = self.work / f"{name}.sqlite3"
            connection.close()
            _remove(target)
            shutil.copyfile(self.template, target)
            self._switch(target)
        else:
            call_command("flush", interactive=False, verbosity=0)
            seed()

    def fixture(self, name: str, build: Callable[[], Meta], *, shared: bool = False) -> Meta:
        """A database with `build`'s rows, built once per run on SQLite.

        `shared=False`: the workload gets its own copy (it writes). `shared=True`: the workload
        only reads, so it opens the built file itself, and `reopen(name)` switches back to it
        cheaply (how the read workloads alternate between a small and a large database).
        PostgreSQL: the bench database is flushed and `build` runs again.
        """
        if self.vendor != "sqlite":
            self.fresh(name)
            return build()
        cached = self.fixtures / f"{name}.sqlite3"
        meta_file = self.fixtures / f"{name}.json"
        if cached.exists() and meta_file.exists():
            meta: Meta = json.loads(meta_file.read_text())
            if shared:
                self._switch(cached)
                return meta
            target = self.work / f"{name}.sqlite3"
            connection.close()
            _remove(target)
            shutil.copyfile(cached, target)
            self._switch(target)
            return meta
        assert self.template is not None
        self.fixtures.mkdir(parents=True, exist_ok=True)
        connection.close()
        build_path = self.work / f"{name}.building.sqlite3"
        _remove(build_path)
        shutil.copyfile(self.template, build_path)
        self._switch(build_path)
        self._building()
        meta = build()
        self._building(done=True)
        connection.close()
        meta_file.write_text(json.dumps(meta))
        if shared:
            _remove(cached)
            build_path.rename(cached)
            self._switch(cached)
        else:
            shutil.copyfile(build_path, cached)
            target = self.work / f"{name}.sqlite3"
            _remove(target)
            build_path.rename(target)
            self._switch(target)
        return meta

    def reopen(self, name: str) -> None:
        """Switch back to a shared fixture built earlier in this run (SQLite only)."""
        self._switch(self.fixtures / f"{name}.sqlite3")

    def url(self) -> str:
        """A DATABASE_URL for the current database (what worker processes are given)."""
        settings = connection.settings_dict
        if self.vendor == "sqlite":
            return f"sqlite:///{Path(settings['NAME']).resolve()}"
        user = quote(settings.get("USER") or "", safe="")
        password = quote(settings.get("PASSWORD") or "", safe="")
        host = settings.get("HOST") or "localhost"
        port = settings.get("PORT") or 5432
        return f"postgres://{user}:{password}@{host}:{port}/{settings['NAME']}"

    def size_bytes(self, tables: Sequence[str]) -> int:
        """The bytes the database holds: the whole file on SQLite (after folding in the WAL),
        the listed tables with their indexes and TOAST on PostgreSQL."""
        if self.vendor == "sqlite":
            sqlite_checkpoint()
            assert self.current is not None
            return self.current.stat().st_size
        with connection.cursor() as cursor:
            total = 0
            for table in tables:
                cursor.execute("SELECT pg_total_relation_size(%s)", [table])
                total += int(cursor.fetchone()[0])
            return total


def _converter(field: models.Field[Any, Any]) -> Callable[[Any], Any] | None:
    """Python value → database value for `field`, memoized (fixtures repeat ids, days and names);
    None when the driver takes the Python value as it is."""
    plain = (models.CharField, models.TextField, models.IntegerField, models.BooleanField)
    if isinstance(field, plain) and not isinstance(field, models.JSONField):
        return None
    cache: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        if value is None:
            return None
        try:
            return cache[value]
        except KeyError:
            out = field.get_db_prep_value(value, connection, prepared=False)
            if len(cache) < 500_000:
                cache[value] = out
            return out
        except TypeError:  # unhashable (a JSON list or object)
            return field.get_db_prep_value(value, connection, prepared=False)

    return convert


def _with_defaults(rows: Iterable[Sequence[Any]], defaults: tuple[Any, ...]) -> Iterator[Sequence[Any]]:
    for row in rows:
        yield (*row, *defaults)


def bulk_insert(
    model: type[models.Model], field_names: Sequence[str], rows: Iterable[Sequence[Any]], *, batch: int = 20_000
) -> int:
    """Insert `rows` (values in `field_names` order) in one transaction; returns the count.

    Every other NOT NULL column with a default gets that default, so a column added later does
    not break a loader that does not name it.
    """
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    columns = [field.column for field in fields if isinstance(field, models.Field)]
    if len(columns) != len(fields):
        raise ValueError(f"bulk_insert: {field_names} are not all concrete fields of {meta.label}")
    defaulted = [
        field
        for field in meta.concrete_fields
        if field not in fields and not field.null and field.has_default() and not field.primary_key
    ]
    if defaulted:
        columns += [field.column for field in defaulted]
        fields += defaulted
        rows = _with_defaults(rows, tuple(field.get_default() for field in defaulted))
    converters = [
        (index, convert)
        for index, field in enumerate(fields)
        if isinstance(field, models.Field) and (convert := _converter(field)) is not None
    ]

    def prepared(row: Sequence[Any]) -> Sequence[Any]:
        if not converters:
            return row
        values = list(row)
        for index, convert in converters:
            values[index] = convert(values[index])
        return values

    quote_name = connection.ops.quote_name
    table = quote_name(meta.db_table)
    column_list = ", ".join(quote_name(column) for column in columns)
    count = 0
    iterator = iter(rows)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            raw = cursor.cursor
            with raw.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
                for row in iterator:
                    copy.write_row(prepared(row))
                    count += 1
            return count
        # Secondary indexes are dropped for the load and rebuilt after it (one sort each instead
        # of a million random B-tree inserts); constraints declared in the table stay in force.
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
            [meta.db_table],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {quote_name(name)}")
        sql = f"INSERT INTO {table} ({column_list}) VALUES ({', '.join(['%s'] * len(columns))})"
        while chunk := list(islice(iterator, batch)):
            cursor.executemany(sql, [prepared(row) for row in chunk])
            count += len(chunk)
        for _, create_sql in indexes:
            cursor.execute(create_sql)
    return count
