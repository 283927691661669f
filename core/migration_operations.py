"""Migration operations shared by the apps' migrations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState, StateApps

from core.accounts.selectors import operator_username


class DropCoveredForeignKeyIndex(migrations.AlterField):
    """Set `db_index=False` on a foreign key whose column leads another index, dropping its index in place.

    `AlterField` would rebuild the whole table on SQLite for this (a copy of every message on a long
    log); dropping the one index is all the change needs. Backwards re-creates the index under its
    original name.
    """

    def __init__(self, model_name: str, name: str, field: models.Field[Any, Any], index_name: str) -> None:
        self.index_name = index_name
        super().__init__(model_name, name, field)

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        name, args, kwargs = super().deconstruct()
        kwargs["index_name"] = self.index_name
        return name, args, kwargs

    def _index(self) -> models.Index:
        return models.Index(fields=[self.name], name=self.index_name)

    def _index_change(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState, add: bool
    ) -> None:
        """Add or remove the index on the model as `state` has it (where this database migrates the model)."""
        model = state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            (schema_editor.add_index if add else schema_editor.remove_index)(model, self._index())

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._index_change(app_label, schema_editor, to_state, add=False)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._index_change(app_label, schema_editor, to_state, add=True)

    def describe(self) -> str:
        return f"Drop the index {self.index_name} of {self.model_name}.{self.name}, which another index covers"


def owners_to_operator(*labels: str) -> migrations.RunPython:
    """Give every row of the models `labels` ("app.Model") without an owner to the operator account.

    The account is AGENTCHAT_OPERATOR_USERNAME (or 'operator'); when there are rows to give and it
    does not exist yet, it is created as a superuser with an unusable password, which
    `manage.py ensure_operator` then replaces (printing it once). An empty database gets no account.
    """

    def forward(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        alias = schema_editor.connection.alias
        pending = [apps.get_model(label)._default_manager.using(alias).filter(owner__isnull=True) for label in labels]
        pending = [rows for rows in pending if rows.exists()]
        if not pending:
            return
        user_model = apps.get_model(settings.AUTH_USER_MODEL)
        users = user_model._default_manager.using(alias)
        username = operator_username()
        operator = users.filter(username=username).first()
        if operator is None:
            operator = users.create(
                username=username, password=make_password(None), is_staff=True, is_superuser=True, email=""
            )
        for rows in pending:
            rows.update(owner=operator)

    return migrations.RunPython(forward, migrations.RunPython.noop)
