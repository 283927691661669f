"""Writes of the configuration records: one record (API, admin) or a whole file (load_config).

Every write validates first through `core.config.validation` (the one place that decides what
may be stored), then writes in one transaction. Log lines carry record names and counts only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from core.config.contracts import ConfigDocument, Kind, MemoryConfig, RecordConfig, kind_of
from core.config.models import (
    ConfigVersion,
    McpServerSpec,
    McpServerStatus,
    MemorySettings,
    ModelRoute,
    RouteStatus,
    Team,
    TeamMember,
)
from core.config.readiness import env_fingerprint
from core.config.selectors import (
    CONFIG_VERSION_ROW,
    MEMORY_SETTINGS_ROW,
    MODELS,
    STATUS_VERSION_ROW,
    config_instance_get,
    config_record_get,
    config_references,
    config_referrers,
    config_snapshot,
    memory_config,
)
from core.config.validation import record_validate
from core.errors import ConflictError

logger = logging.getLogger(__name__)

# Dependencies first, so that every name a record refers to is written before it.
APPLY_ORDER = (Kind.PROVIDER, Kind.TOOL, Kind.MCP_SERVER, Kind.ROUTE, Kind.SKILL, Kind.AGENT, Kind.TEAM)


class _Lookup:
    """Stored records by kind and name, fetched once each during one write."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Kind, str], Any] = {}

    def get(self, kind: Kind, name: str) -> Any:
        if (kind, name) not in self._cache:
            self._cache[(kind, name)] = MODELS[kind]._default_manager.get(**{kind.key_field: name})
        return self._cache[(kind, name)]

    def many(self, kind: Kind, names: tuple[str, ...]) -> list[Any]:
        return [self.get(kind, name) for name in names]

    def remember(self, kind: Kind, instance: Any) -> None:
        self._cache[(kind, getattr(instance, kind.key_field))] = instance


# Contract fields that name other records; everything else is copied onto the model as is.
_FOREIGN_KEYS: dict[str, Kind] = {"provider": Kind.PROVIDER, "route": Kind.ROUTE, "lead": Kind.AGENT}
_MANY_TO_MANY: dict[str, Kind] = {"tools": Kind.TOOL, "skills": Kind.SKILL, "mcp_servers": Kind.MCP_SERVER}


def _write(record: RecordConfig, instance: Any, lookup: _Lookup) -> models.Model:
    """Copy a validated contract onto `instance` (a new one when None) and save it with its relations."""
    kind = kind_of(record)
    if instance is None:
        instance = MODELS[kind]()
    many: dict[str, tuple[str, ...]] = {}
    for item in fields(record):
        value = getattr(record, item.name)
        if item.name in _FOREIGN_KEYS:
            setattr(instance, item.name, lookup.get(_FOREIGN_KEYS[item.name], value))
        elif item.name in _MANY_TO_MANY or item.name == "members":
            many[item.name] = value
        elif isinstance(value, tuple):
            setattr(instance, item.name, list(value))
        elif isinstance(value, Mapping):
            setattr(instance, item.name, dict(value))
        else:
            setattr(instance, item.name, value)
    instance.save()
    for name, names in many.items():
        if name == "members":
            _members_write(instance, names, lookup)
        else:
            getattr(instance, name).set(lookup.many(_MANY_TO_MANY[name], names))
    lookup.remember(kind, instance)
    saved: models.Model = instance
    return saved


def _members_write(team: Team, members: tuple[str, ...], lookup: _Lookup) -> None:
    current = list(TeamMember.objects.filter(team=team).order_by("position").values_list("agent__name", flat=True))
    if current == list(members):
        return
    # Replace the list whole: positions are unique per team, so renumbering in place would collide.
    TeamMember.objects.filter(team=team).delete()
    TeamMember.objects.bulk_create(
        TeamMember(team=team, agent=lookup.get(Kind.AGENT, name), position=position)
        for position, name in enumerate(members)
    )


def _version_renew(row: int = CONFIG_VERSION_ROW) -> None:
    """A new configuration version stamp (`config_version`), or statuses' stamp with `STATUS_VERSION_ROW`
    (`config_stamps`), inside the caller's transaction."""
    stamp = uuid.uuid4()
    if not ConfigVersion.objects.filter(pk=row).update(stamp=stamp):
        ConfigVersion.objects.create(pk=row, stamp=stamp)


def config_record_create(*, record: RecordConfig) -> models.Model:
    """Validate and create one record (API, admin)."""
    kind = kind_of(record)
    with transaction.atomic():
        record_validate(record, refs=config_references(), existing_key=None)
        instance = _write(record, None, _Lookup())
        _version_renew()
    logger.info("configuration: created %s %r", kind.label, record.key)
    return instance


def config_record_update(*, kind: Kind, key: str, record: RecordConfig) -> models.Model:
    """Validate and replace the record of `kind` named `key` with `record` (which may rename it)."""
    if kind_of(record) is not kind:
        raise TypeError(f"a {kind_of(record).label} cannot replace a {kind.label}")
    with transaction.atomic():
        instance = config_instance_get(kind, key)
        record_validate(record, refs=config_references(), existing_key=key)
        saved = _write(record, instance, _Lookup())
        _version_renew()
    logger.info("configuration: updated %s %r", kind.label, record.key)
    return saved


def config_record_delete(*, kind: Kind, key: str) -> None:
    """Delete a record nothing refers to; otherwise `ConflictError` naming what refers to it."""
    with transaction.atomic():
        referrers = config_referrers(kind, key)
        if referrers:
            raise ConflictError.for_field(
                kind.key_field,
                f"{kind.label} {key!r} is used by {'; '.join(referrers)}; remove those references first",
            )
        config_instance_get(kind, key).delete()
        _version_renew()
    logger.info("configuration: deleted %s %r", kind.label, key)


@dataclass(frozen=True)
class ApplyResult:
    """What applying a configuration file changed, record by record."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    unchanged: int = 0
    lines: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.disabled)


def _describe(kind: Kind, key: str) -> str:
    return f"{kind.label} {key!r}"


def _memory_write(memory: MemoryConfig) -> None:
    values = {item.name: getattr(memory, item.name) for item in fields(MemoryConfig)}
    MemorySettings.objects.update_or_create(pk=MEMORY_SETTINGS_ROW, defaults=values)


def _changed_fields(old: RecordConfig | MemoryConfig, new: RecordConfig | MemoryConfig) -> list[str]:
    return [item.name for item in fields(new) if getattr(old, item.name) != getattr(new, item.name)]


def config_document_apply(*, document: ConfigDocument, prune: bool) -> ApplyResult:
    """Create and update every record of a validated document in one transaction.

    With `prune`, stored records the document does not name are disabled (never deleted: sessions
    and runs may refer to them). Records already equal to the document are not written.
    """
    created: list[str] = []
    updated: list[str] = []
    disabled: list[str] = []
    lines: list[str] = []
    unchanged = 0
    with transaction.atomic():
        current = config_snapshot()
        lookup = _Lookup()
        wanted_default = next((route.alias for route in document.routes if route.is_default), None)
        if wanted_default is not None:
            # At most one default (a unique constraint): clear the old default before setting the new.
            for route in current.routes:
                if route.is_default and route.alias != wanted_default:
                    ModelRoute.objects.filter(alias=route.alias).update(is_default=False)
                    if route.alias not in {item.alias for item in document.routes}:
                        updated.append(_describe(Kind.ROUTE, route.alias))
                        lines.append(f"updated {_describe(Kind.ROUTE, route.alias)}: is_default")
        for kind in APPLY_ORDER:
            stored = {record.key: record for record in current.records(kind)}
            for record in document.records(kind):
                old = stored.get(record.key)
                if old is None:
                    _write(record, None, lookup)
                    created.append(_describe(kind, record.key))
                    lines.append(f"created {_describe(kind, record.key)}")
                elif old != record:
                    _write(record, config_instance_get(kind, record.key), lookup)
                    updated.append(_describe(kind, record.key))
                    lines.append(f"updated {_describe(kind, record.key)}: {', '.join(_changed_fields(old, record))}")
                else:
                    unchanged += 1
            if prune:
                named = {record.key for record in document.records(kind)}
                gone = [key for key, record in stored.items() if key not in named and record.enabled]
                if gone:
                    MODELS[kind]._default_manager.filter(**{f"{kind.key_field}__in": gone}).update(enabled=False)
                    for key in sorted(gone):
                        disabled.append(_describe(kind, key))
                        lines.append(f"disabled {_describe(kind, key)} (not in the file)")
        memory_changes = _changed_fields(memory_config(), document.memory)
        if memory_changes:
            _memory_write(document.memory)
            updated.append("memory settings")
            lines.append(f"updated memory settings: {', '.join(memory_changes)}")
        if created or updated or disabled:
            _version_renew()
    result = ApplyResult(
        created=tuple(created),
        updated=tuple(updated),
        disabled=tuple(disabled),
        unchanged=unchanged,
        lines=tuple(lines),
    )
    logger.info(
        "configuration applied: %d created, %d updated, %d disabled, %d unchanged",
        len(created),
        len(updated),
        len(disabled),
        unchanged,
    )
    return result


# --- what using a route taught (RouteStatus: not configuration, so load_config leaves it) ----------

KEY_REFUSED = "key_refused"
MODEL_NOT_FOUND = "model_not_found"
MAX_PROBE_MESSAGE_CHARS = 2000


def _outcome_apply(status: RouteStatus, route: ModelRoute, code: str) -> None:
    """Set or lift the blocks an answer implies: success lifts both; 401/403 and an unknown model set theirs."""
    now = timezone.now()
    if not code:
        status.key_refused_env = status.key_refused_hmac = status.model_missing = ""
        status.key_refused_at = status.model_missing_at = None
    elif code == KEY_REFUSED:
        status.key_refused_env = route.provider.api_key_env
        status.key_refused_hmac = env_fingerprint(route.provider.api_key_env)
        status.key_refused_at = now
    elif code == MODEL_NOT_FOUND:
        status.model_missing = route.model_id
        status.model_missing_at = now


def route_probe_record(*, route: ModelRoute, ok: bool, code: str, message: str, latency_ms: int | None) -> RouteStatus:
    """Store a probe's result on the route's status (its provider selected), with the blocks it implies."""
    with transaction.atomic():
        status, _ = RouteStatus.objects.select_for_update().get_or_create(route_id=route.pk)
        status.probe_ok = ok
        status.probe_code = "" if ok else code
        status.probe_message = message[:MAX_PROBE_MESSAGE_CHARS]
        status.probe_model = route.model_id
        status.probe_latency_ms = latency_ms
        status.probed_at = timezone.now()
        _outcome_apply(status, route, "" if ok else code)
        status.save()
        _version_renew(STATUS_VERSION_ROW)
    logger.info("route %r probed: %s", route.alias, "ok" if ok else code)
    return status


MAX_MCP_ERROR_CHARS = 8000


def mcp_probe_record(*, server_id: int, ok: bool, tools: list[dict[str, Any]], error: str) -> None:
    """Store an MCP server's probe: its tools (after the allowlist) with their schemas, or the error.

    Nothing is written when the server's record was deleted meanwhile.
    """
    with transaction.atomic():
        if not McpServerSpec.objects.filter(pk=server_id).exists():
            return
        McpServerStatus.objects.update_or_create(
            server_id=server_id,
            defaults={
                "ok": ok,
                "tools": tools if ok else [],
                "error": "" if ok else (error or "the probe failed without a reason")[:MAX_MCP_ERROR_CHARS],
                "probed_at": timezone.now(),
            },
        )
        _version_renew(STATUS_VERSION_ROW)
    logger.info("MCP server %s probed: %s", server_id, f"{len(tools)} tools" if ok else "failed")


def route_turn_outcome(*, route: ModelRoute, code: str) -> None:
    """What a turn's answer says about its route (its provider selected): `code` "" is a success.

    A success lifts any block (one UPDATE, only where one is set); `key_refused` and `model_not_found`
    set theirs; other failures say nothing about the route and write nothing.
    """
    if not code:
        with transaction.atomic():
            lifted = RouteStatus.objects.filter(
                Q(key_refused_at__isnull=False) | Q(model_missing_at__isnull=False), route_id=route.pk
            ).update(
                key_refused_env="",
                key_refused_hmac="",
                key_refused_at=None,
                model_missing="",
                model_missing_at=None,
                updated=timezone.now(),
            )
            if lifted:
                _version_renew(STATUS_VERSION_ROW)
        return
    if code not in (KEY_REFUSED, MODEL_NOT_FOUND):
        return
    with transaction.atomic():
        status, _ = RouteStatus.objects.select_for_update().get_or_create(route_id=route.pk)
        _outcome_apply(status, route, code)
        status.save()
        _version_renew(STATUS_VERSION_ROW)
    logger.info("route %r blocked by a turn's answer: %s", route.alias, code)


__all__ = [
    "APPLY_ORDER",
    "ApplyResult",
    "config_document_apply",
    "config_record_create",
    "config_record_delete",
    "config_record_get",
    "config_record_update",
    "route_probe_record",
    "route_turn_outcome",
]
