"""Writes to token telemetry: the only path by which usage events and their rollups change.

The rollup invariant: every rollup row equals the sums of the events it covers. Each write keeps
it in one transaction, the event row first, then one statement per rollup:

- a new key is added with `INSERT … ON CONFLICT (key) DO UPDATE SET c = c + excluded.c` (SQLite
  ≥ 3.24 and PostgreSQL), so concurrent recorders never read-modify-write a counter;
- removing an event (delete, or the old side of a correction) subtracts with `UPDATE … SET
  c = c + delta` and deletes a row whose event count reaches zero.

Statements touch the rollups in a fixed order (day, user x day, session, all time; keys sorted) so two
PostgreSQL transactions cannot deadlock on them. On SQLite the connection's `BEGIN IMMEDIATE`
serializes writers anyway. `usage_rollups_rebuild` recomputes every rollup from the events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from core.config.selectors import route_resolve
from core.errors import ConflictError, InvalidInputError
from core.lookups import row_get
from core.models import AgentSession, ModelRoute, Provider, Run, RunPurpose
from telemetry.models import UsageByAgent, UsageBySession, UsageEvent
from telemetry.selectors import (
    COUNTER_FIELDS,
    REPORTED_TOKEN_FIELDS,
    ROLLUP_KEYS,
    UNKNOWN_FIELDS,
    RollupDifference,
    RollupKey,
    RollupModel,
    local_day,
    rollup_differences,
    rollups_recomputed,
)
from telemetry.selectors import TOKEN_FIELDS as ROLLUP_TOKEN_FIELDS

MAX_TOKENS = 1_000_000_000
MAX_REQUEST_ID_CHARS = 128
MAX_PROVIDER_CHARS = 64
MAX_MODEL_CHARS = 200
MAX_LATENCY_MS = 24 * 3600 * 1000
# A report from a machine whose clock runs a little fast is fine; one from next week is not.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
# One event may cost at most a million dollars; larger means a wrong price or a wrong count.
MAX_EVENT_COST_PICO_USD = 10**6 * 10**12
# The counts a report gives (None: not reported); total_tokens is derived from them.
TOKEN_FIELDS = REPORTED_TOKEN_FIELDS
PRICE_FIELDS = (
    "price_input_per_mtok",
    "price_cached_input_per_mtok",
    "price_cache_write_per_mtok",
    "price_output_per_mtok",
)

# Fixed order in which a transaction touches the rollups (see the module docstring).
ROLLUP_ORDER: tuple[RollupModel, ...] = tuple(ROLLUP_KEYS)


@dataclass(frozen=True)
class RecordResult:
    """The stored event, and whether this call created it (False for a repeated request_id)."""

    event: UsageEvent
    created: bool


def _price_micro(price: Decimal | None) -> int | None:
    """USD per million tokens as an integer number of micro-dollars (prices have ≤ 6 decimals)."""
    if price is None:
        return None
    scaled = price.scaleb(6)
    if scaled != scaled.to_integral_value():
        raise InvalidInputError.for_field("price", f"{price} has more than 6 decimals; round it to 6")
    return int(scaled)


@dataclass(frozen=True)
class UsageCost:
    """An event's cost: `pico_usd` is None when a price it needs is unknown; `partial` when it is a lower bound."""

    pico_usd: int | None
    partial: bool


def _remainder_price(prices: list[int | None]) -> int | None:
    """The lowest of the prices input tokens of an unreported kind may have had (None if one is unknown)."""
    known = [price for price in prices if price is not None]
    return min(known) if len(known) == len(prices) else None


def usage_cost(
    *,
    input_tokens: int | None,
    cached_input_tokens: int | None,
    cache_write_input_tokens: int | None,
    output_tokens: int | None,
    price_input_per_mtok: Decimal | None,
    price_cached_input_per_mtok: Decimal | None,
    price_cache_write_per_mtok: Decimal | None,
    price_output_per_mtok: Decimal | None,
) -> UsageCost:
    """The exact cost in pico-dollars of what is known, and whether counts the price depends on were unknown.

    Input splits into cache reads (cached price, else the input price), cache writes (cache write
    price, else the input price) and the rest (input price); output has the output price. Prices
    are per million tokens. A price is needed only for a category with tokens, so an embedding call
    (no output) is priced without an output price; a known category with tokens and no price makes
    the whole event unpriced, never a sum that silently leaves tokens out.

    An unreported count (None) prices nothing and makes the cost partial (a lower bound) unless its
    price is 0; an unreported cache count matters only when its price differs from the input price,
    and then the input it hides is priced at the lowest price it could have had.
    """
    price_input = _price_micro(price_input_per_mtok)
    price_read = _price_micro(price_cached_input_per_mtok)
    price_write = _price_micro(price_cache_write_per_mtok)
    price_output = _price_micro(price_output_per_mtok)
    price_read = price_input if price_read is None else price_read
    price_write = price_input if price_write is None else price_write
    subsets = ((cached_input_tokens, price_read), (cache_write_input_tokens, price_write))
    hidden_prices = [price for tokens, price in subsets if tokens is None and price != price_input]
    remainder = None if input_tokens is None else input_tokens - sum(tokens or 0 for tokens, _ in subsets)
    parts = [
        *((tokens, price) for tokens, price in subsets if tokens is not None),
        (remainder, _remainder_price([price_input, *hidden_prices])),
        (output_tokens, price_output),
    ]
    partial = bool(hidden_prices) and remainder is not None
    total = 0
    for tokens, price in parts:
        if tokens is None:
            partial = partial or price != 0
        elif tokens and price is None:
            return UsageCost(pico_usd=None, partial=partial)
        else:
            # tokens x micro-dollars per million tokens = pico-dollars.
            total += tokens * (price or 0)
    return UsageCost(pico_usd=total, partial=partial)


def usage_cost_pico_usd(
    *,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    price_input_per_mtok: Decimal | None,
    price_cached_input_per_mtok: Decimal | None,
    price_output_per_mtok: Decimal | None,
    cache_write_input_tokens: int = 0,
    price_cache_write_per_mtok: Decimal | None = None,
) -> int | None:
    """The exact cost in pico-dollars of fully reported counts, or None when a price they need is unknown."""
    return usage_cost(
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        cache_write_input_tokens=cache_write_input_tokens,
        output_tokens=output_tokens,
        price_input_per_mtok=price_input_per_mtok,
        price_cached_input_per_mtok=price_cached_input_per_mtok,
        price_cache_write_per_mtok=price_cache_write_per_mtok,
        price_output_per_mtok=price_output_per_mtok,
    ).pico_usd


def _counts_check(counts: Mapping[str, int | None], errors: dict[str, list[str]]) -> None:
    for name in TOKEN_FIELDS:
        value = counts[name]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            errors.setdefault(name, []).append("must be a whole number, or null when the provider did not report it")
        elif value < 0:
            errors.setdefault(name, []).append(f"is {value}; a token count is zero or more")
        elif value > MAX_TOKENS:
            errors.setdefault(name, []).append(f"is {value}; at most {MAX_TOKENS:,} tokens per event")
    if errors:
        return
    input_tokens, output_tokens = counts["input_tokens"], counts["output_tokens"]
    cached, written = counts["cached_input_tokens"], counts["cache_write_input_tokens"]
    if input_tokens is not None and cached is not None and cached > input_tokens:
        errors["cached_input_tokens"] = [
            f"{cached} is more than input_tokens {input_tokens}; "
            "cached input tokens are a part of the input, so count them in input_tokens too"
        ]
    elif input_tokens is not None and written is not None and written + (cached or 0) > input_tokens:
        errors["cache_write_input_tokens"] = [
            f"{written} plus cached_input_tokens {cached or 0} is more than input_tokens {input_tokens}; "
            "cache writes are a part of the input, so count them in input_tokens too"
        ]
    reasoning = counts["reasoning_tokens"]
    if output_tokens is not None and reasoning is not None and reasoning > output_tokens:
        errors["reasoning_tokens"] = [
            f"{reasoning} is more than output_tokens {output_tokens}; "
            "reasoning tokens are a part of the output, so count them in output_tokens too"
        ]


def _latency_check(latency_ms: int | None, errors: dict[str, list[str]]) -> None:
    if latency_ms is None:
        return
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, int):
        errors["latency_ms"] = ["must be a whole number of milliseconds"]
    elif not 0 <= latency_ms <= MAX_LATENCY_MS:
        errors["latency_ms"] = [f"is {latency_ms}; give 0 to {MAX_LATENCY_MS} milliseconds"]


def _occurred_at_check(occurred_at: dt.datetime, errors: dict[str, list[str]]) -> None:
    if timezone.is_naive(occurred_at):
        errors["occurred_at"] = ["has no timezone; send it in UTC (…Z) or with an offset"]
    elif occurred_at > timezone.now() + MAX_CLOCK_SKEW:
        errors["occurred_at"] = [
            f"{occurred_at.isoformat()} is in the future; send the time the provider call finished"
        ]


def _name_check(field: str, value: str | None, limit: int, errors: dict[str, list[str]]) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > limit:
        errors[field] = [f"must be 1 to {limit} characters"]
    return value


def _fail(errors: dict[str, list[str]]) -> NoReturn:
    message = "; ".join(f"{field}: {problems[0]}" for field, problems in errors.items())
    raise InvalidInputError(message, fields=errors)


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        _fail(errors)


# --- Rollup arithmetic ------------------------------------------------------------------------


def _event_counters(event: UsageEvent) -> dict[str, int]:
    counters = {
        "event_count": 1,
        "priced_event_count": 0 if event.cost_pico_usd is None else 1,
        "partial_cost_event_count": 1 if event.cost_pico_usd is not None and event.cost_partial else 0,
        "cost_pico_usd": event.cost_pico_usd or 0,
    }
    for name, unknown in zip(ROLLUP_TOKEN_FIELDS, UNKNOWN_FIELDS, strict=True):
        value: int | None = getattr(event, name)
        counters[name] = value or 0
        counters[unknown] = 1 if value is None else 0
    return counters


def _event_keys(event: UsageEvent) -> list[tuple[RollupModel, RollupKey]]:
    """The row of each rollup the event counts in (the keys `ROLLUP_KEYS` declares): no session row
    without a session, no agent row without an agent (as `rollups_recomputed` groups them)."""
    return [
        (model, tuple((target, getattr(event, source)) for source, target in key_map))
        for model, key_map in ROLLUP_KEYS.items()
        if (model is not UsageBySession or event.session_id is not None) and (model is not UsageByAgent or event.agent)
    ]


Deltas = dict[tuple[RollupModel, RollupKey], dict[str, int]]


def _deltas_add(deltas: Deltas, event: UsageEvent, sign: int) -> None:
    counters = _event_counters(event)
    for key in _event_keys(event):
        current = deltas.setdefault(key, dict.fromkeys(COUNTER_FIELDS, 0))
        for name, value in counters.items():
            current[name] += sign * value


def _upsert_add(model: RollupModel, key: Mapping[str, Any], delta: Mapping[str, int]) -> None:
    """Add `delta` to the row at `key`, creating it: one `INSERT … ON CONFLICT DO UPDATE` statement."""
    meta = model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    key_fields = [f for f in (meta.get_field(name) for name in key) if isinstance(f, Field)]
    key_columns = [str(f.column) for f in key_fields]
    key_values = [f.get_db_prep_save(value, connection) for f, value in zip(key_fields, key.values(), strict=True)]
    columns = [*key_columns, *COUNTER_FIELDS]
    placeholders = ", ".join(["%s"] * len(columns))
    updates = ", ".join(f"{quote(name)} = {table}.{quote(name)} + excluded.{quote(name)}" for name in COUNTER_FIELDS)
    # Identifiers come from the model's metadata, never from input; values are parameters.
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) VALUES ({placeholders}) "  # noqa: S608  # nosec B608
        f"ON CONFLICT ({', '.join(quote(c) for c in key_columns)}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*key_values, *(delta[name] for name in COUNTER_FIELDS)])


def _update_subtract(model: RollupModel, key: Mapping[str, Any], delta: Mapping[str, int]) -> None:
    """Apply a delta that removes events (or changes counts) to an existing row; drop it at zero events."""
    rows: Any = model._default_manager.filter(**key)
    changed = rows.update(**{name: F(name) + delta[name] for name in COUNTER_FIELDS if delta[name]})
    if changed != 1:
        raise ConflictError(
            f"The {model._meta.verbose_name} rollup for {dict(key)} is missing: rollups are out of step with "
            "the events; run `manage.py telemetry_reconcile --repair`",
            fields={"rollup": [f"no {model._meta.verbose_name} row for {dict(key)}"]},
        )
    if delta["event_count"] < 0:
        rows.filter(event_count=0).delete()


def _deltas_apply(deltas: Deltas) -> None:
    for model in ROLLUP_ORDER:
        keyed = sorted(((key, delta) for (m, key), delta in deltas.items() if m is model), key=lambda kd: str(kd[0]))
        for key, delta in keyed:
            if not any(delta.values()):
                continue
            if delta["event_count"] > 0:
                _upsert_add(model, dict(key), delta)
            else:
                _update_subtract(model, dict(key), delta)


# --- Services ---------------------------------------------------------------------------------


def _same_report(event: UsageEvent, provider: str | None, model: str | None, counts: Mapping[str, int | None]) -> bool:
    return (
        (provider is None or provider == event.provider)
        and (model is None or model == event.model)
        and all(getattr(event, name) == value for name, value in counts.items())
    )


def _repeat(
    event: UsageEvent,
    owner: AbstractBaseUser,
    provider: str | None,
    model: str | None,
    counts: Mapping[str, int | None],
) -> RecordResult:
    if event.owner_id != owner.pk:
        # Nothing of the other user's event is shown; the id is simply taken.
        raise ConflictError.for_field("request_id", "is already taken; give a new, unique request_id")
    if not _same_report(event, provider, model, counts):
        raise ConflictError.for_field(
            "request_id",
            f"{event.request_id!r} was already recorded with different usage; give a new request_id for a new "
            "report (a correction goes through usage_correct)",
        )
    return RecordResult(event=event, created=False)


def _route_resolve(route_alias: str | None, errors: dict[str, list[str]]) -> ModelRoute | None:
    """The route usage is counted under: any known route, enabled or not (it may be disabled since)."""
    if route_alias is None:
        return None
    try:
        return route_resolve(route_alias, enabled_only=False)
    except InvalidInputError as exc:
        errors.update(exc.fields)
        return None


def _session_run_resolve(
    owner_id: int, session_id: UUID | str | None, run_id: UUID | str | None, errors: dict[str, list[str]]
) -> tuple[AgentSession | None, Run | None]:
    session: AgentSession | None = None
    run: Run | None = None
    if session_id is not None:
        session_pk = _uuid_or_none(session_id)
        session = AgentSession.objects.filter(pk=session_pk, owner_id=owner_id).first() if session_pk else None
        if session is None:
            errors["session"] = [f"no session {session_id}; give the id of an existing session"]
    if run_id is not None:
        run_pk = _uuid_or_none(run_id)
        run = Run.objects.select_related("agent").filter(pk=run_pk, owner_id=owner_id).first() if run_pk else None
        if run is None:
            errors["run"] = [f"no run {run_id}; give the id of an existing run"]
    if run is not None and session is not None and run.session_id != session.pk:
        errors["run"] = [f"run {run.pk} belongs to session {run.session_id}, not {session.pk}; send the run's session"]
    return session, run


def _uuid_or_none(value: UUID | str) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return None


def usage_record(
    *,
    owner: AbstractBaseUser,
    request_id: str,
    provider: str | None = None,
    model: str | None = None,
    route_alias: str | None = None,
    session_id: UUID | str | None = None,
    run_id: UUID | str | None = None,
    input_tokens: int | None = 0,
    cached_input_tokens: int | None = 0,
    cache_write_input_tokens: int | None = 0,
    output_tokens: int | None = 0,
    reasoning_tokens: int | None = 0,
    latency_ms: int | None = None,
    occurred_at: dt.datetime | None = None,
    purpose: str = RunPurpose.CHAT,
    agent: str | None = None,
) -> RecordResult:
    """Record one usage report of `owner` and add it to every rollup; a repeated `request_id` returns the stored event.

    The session and run must be `owner`'s; a `request_id` another user recorded is a conflict.

    `provider` and `model` default to the route's; `session` defaults to the run's, `agent` (a name)
    to the agent the run ran as (counted in the per-agent rollup). The cost is
    priced with the route's prices now and is empty without a route. A count given as None was not
    reported by the provider: it is stored as unknown, never as zero.
    """
    errors: dict[str, list[str]] = {}
    request_id = _name_check("request_id", request_id, MAX_REQUEST_ID_CHARS, errors) or ""
    provider = _name_check("provider", provider, MAX_PROVIDER_CHARS, errors)
    model = _name_check("model", model, MAX_MODEL_CHARS, errors)
    agent = _name_check("agent", agent, MAX_PROVIDER_CHARS, errors)
    counts = {
        "input_tokens": input_tokens,
        "cached_input_tokens": cached_input_tokens,
        "cache_write_input_tokens": cache_write_input_tokens,
        "output_tokens": output_tokens,
        "reasoning_tokens": reasoning_tokens,
    }
    _counts_check(counts, errors)
    _latency_check(latency_ms, errors)
    if purpose not in RunPurpose.values:
        errors["purpose"] = [f"{purpose!r} is not a purpose; use one of {', '.join(RunPurpose.values)}"]
    occurred_at = occurred_at or timezone.now()
    _occurred_at_check(occurred_at, errors)
    _raise_if(errors)

    try:
        with transaction.atomic():
            existing = UsageEvent.objects.filter(request_id=request_id).first()
            if existing is not None:
                return _repeat(existing, owner, provider, model, counts)
            event = _event_build(
                request_id=request_id,
                provider=provider,
                model=model,
                route_alias=route_alias,
                session_id=session_id,
                run_id=run_id,
                agent=agent,
                counts=counts,
                latency_ms=latency_ms,
                occurred_at=occurred_at,
                owner_id=owner.pk,
            )
            event.purpose = purpose
            event.save(force_insert=True)
            deltas: Deltas = {}
            _deltas_add(deltas, event, +1)
            _deltas_apply(deltas)
    except IntegrityError:
        # Another process recorded the same request_id between our read and our insert
        # (PostgreSQL; SQLite's BEGIN IMMEDIATE serializes the read and the insert).
        existing = UsageEvent.objects.filter(request_id=request_id).first()
        if existing is None:
            raise
        return _repeat(existing, owner, provider, model, counts)
    return RecordResult(event=event, created=True)


def _event_build(
    *,
    owner_id: int,
    request_id: str,
    provider: str | None,
    model: str | None,
    route_alias: str | None,
    session_id: UUID | str | None,
    run_id: UUID | str | None,
    agent: str | None,
    counts: Mapping[str, int | None],
    latency_ms: int | None,
    occurred_at: dt.datetime,
) -> UsageEvent:
    """Resolve the references of a report (inside the recording transaction) and build the unsaved event."""
    errors: dict[str, list[str]] = {}
    route = _route_resolve(route_alias, errors)
    if route is not None:
        if provider is not None and provider != route.provider.name:
            errors["route"] = [
                f"{route.alias!r} belongs to provider {route.provider.name!r}, not {provider!r}; "
                "send the route the call went through"
            ]
        provider = provider or route.provider.name
        model = model or route.model_id
    if provider is None:
        errors.setdefault("provider", ["required; name a configured provider (or give a route)"])
    elif "route" not in errors and not Provider.objects.filter(name=provider).exists():
        errors["provider"] = [f"no provider {provider!r}; use a name from /api/config/providers/"]
    if model is None:
        errors["model"] = ["required; give the model name the provider reported (or a route)"]
    session, run = _session_run_resolve(owner_id, session_id, run_id, errors)
    if session is None and run is not None and "session" not in errors:
        session = run.session
    if agent is None and run is not None and run.agent is not None:
        agent = run.agent.name
    if errors or provider is None or model is None:
        _fail(errors)

    prices: dict[str, Decimal | None] = {name: getattr(route, name) if route else None for name in PRICE_FIELDS}
    cost = _cost_checked(counts, prices)
    day, zone_name = local_day(occurred_at)
    return UsageEvent(
        request_id=request_id,
        owner_id=owner_id,
        occurred_at=occurred_at,
        day=day,
        day_timezone=zone_name,
        provider=provider,
        model=model,
        route=route,
        session=session,
        run=run,
        agent=agent or "",
        total_tokens=_total(counts),
        cost_pico_usd=cost.pico_usd,
        cost_partial=cost.partial,
        latency_ms=latency_ms,
        **counts,
        **prices,
    )


def _total(counts: Mapping[str, int | None]) -> int | None:
    """input + output, or None when either was not reported."""
    input_tokens, output_tokens = counts["input_tokens"], counts["output_tokens"]
    return None if input_tokens is None or output_tokens is None else input_tokens + output_tokens


def _cost_checked(counts: Mapping[str, int | None], prices: Mapping[str, Decimal | None]) -> UsageCost:
    cost = usage_cost(
        input_tokens=counts["input_tokens"],
        cached_input_tokens=counts["cached_input_tokens"],
        cache_write_input_tokens=counts["cache_write_input_tokens"],
        output_tokens=counts["output_tokens"],
        price_input_per_mtok=prices["price_input_per_mtok"],
        price_cached_input_per_mtok=prices["price_cached_input_per_mtok"],
        price_cache_write_per_mtok=prices["price_cache_write_per_mtok"],
        price_output_per_mtok=prices["price_output_per_mtok"],
    )
    if cost.pico_usd is not None and cost.pico_usd > MAX_EVENT_COST_PICO_USD:
        raise InvalidInputError.for_field(
            "cost",
            f"{cost.pico_usd / 10**12:,.2f} USD for one event is not plausible; "
            "check the token counts and the route's prices",
        )
    return cost


def _event_locked(event_id: int) -> UsageEvent:
    return row_get(UsageEvent.objects.select_for_update(), "event", f"no usage event {event_id}", pk=event_id)


def usage_correct(
    *,
    event_id: int,
    model: str | None = None,
    input_tokens: int | None = None,
    cached_input_tokens: int | None = None,
    cache_write_input_tokens: int | None = None,
    output_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    latency_ms: int | None = None,
    occurred_at: dt.datetime | None = None,
) -> UsageEvent:
    """Change a recorded event's counts (re-priced with its recorded prices) and move it in every rollup.

    A count left None keeps its stored value (a correction fills in counts; it never forgets one).
    """
    errors: dict[str, list[str]] = {}
    model = _name_check("model", model, MAX_MODEL_CHARS, errors)
    _latency_check(latency_ms, errors)
    if occurred_at is not None:
        _occurred_at_check(occurred_at, errors)
    _raise_if(errors)
    given = {
        "input_tokens": input_tokens,
        "cached_input_tokens": cached_input_tokens,
        "cache_write_input_tokens": cache_write_input_tokens,
        "output_tokens": output_tokens,
        "reasoning_tokens": reasoning_tokens,
    }
    with transaction.atomic():
        event = _event_locked(event_id)
        counts = {name: getattr(event, name) if value is None else value for name, value in given.items()}
        _counts_check(counts, errors)
        _raise_if(errors)
        deltas: Deltas = {}
        _deltas_add(deltas, event, -1)
        for name, value in counts.items():
            setattr(event, name, value)
        event.total_tokens = _total(counts)
        cost = _cost_checked(counts, {name: getattr(event, name) for name in PRICE_FIELDS})
        event.cost_pico_usd, event.cost_partial = cost.pico_usd, cost.partial
        if model is not None:
            event.model = model
        if latency_ms is not None:
            event.latency_ms = latency_ms
        if occurred_at is not None:
            event.occurred_at = occurred_at
            event.day, event.day_timezone = local_day(occurred_at)
        event.corrected_at = timezone.now()
        event.save()
        _deltas_add(deltas, event, +1)
        _deltas_apply(deltas)
    return event


def usage_delete(*, event_id: int) -> None:
    """Delete one event and subtract it from every rollup."""
    with transaction.atomic():
        event = _event_locked(event_id)
        deltas: Deltas = {}
        _deltas_add(deltas, event, -1)
        event.delete()
        _deltas_apply(deltas)


def usage_rollups_rebuild() -> list[RollupDifference]:
    """Recompute every rollup from the events in one transaction; returns the differences it fixed."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Hold off new events (and their rollup upserts) until the rebuilt rollups commit.
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {connection.ops.quote_name(UsageEvent._meta.db_table)} IN SHARE MODE")
        recomputed = rollups_recomputed()
        differences = rollup_differences(recomputed=recomputed)
        for model in ROLLUP_ORDER:
            model._default_manager.all().delete()
            rows: list[Any] = [model(**dict(key), **counts) for key, counts in recomputed[model].items()]
            model._default_manager.bulk_create(rows, batch_size=500)
    return differences


__all__ = [
    "ROLLUP_ORDER",
    "RecordResult",
    "UsageCost",
    "usage_correct",
    "usage_cost",
    "usage_cost_pico_usd",
    "usage_delete",
    "usage_record",
    "usage_rollups_rebuild",
]
