"""Admin for the configuration records.

Every form runs `core.config.validation` (the checks `load_config` and the API run) and saves
through `core.config.services`; a record something refers to cannot be deleted. Providers,
routes and MCP servers show their readiness in the list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, QueryDict

from core.admin_base import ReadOnlyAdmin
from core.config.api.serializers import stored_readiness
from core.config.api.views import READ_ONLY
from core.config.contracts import Kind, RecordConfig, TeamConfig, contract_fields
from core.config.models import AgentProfile, McpServerSpec, ModelRoute, Provider, SkillSpec, Team, TeamMember, ToolSpec
from core.config.readiness import provider_credential
from core.config.secrets import SECRET_HINT
from core.config.selectors import MODELS, config_references, provider_config
from core.config.validation import ConfigInvalidError, record_from_raw, record_validate

_M = TypeVar("_M", bound=models.Model)


def _raw_from_cleaned(kind: Kind, cleaned: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """A raw record (as the file or the API would give it) from a form's cleaned data."""
    raw: dict[str, Any] = {}
    for name in names:
        if name not in cleaned:
            continue
        value = cleaned[name]
        if isinstance(value, models.Model):
            value = getattr(value, "alias" if isinstance(value, ModelRoute) else "name")
        elif isinstance(value, models.QuerySet):
            value = sorted(item.name for item in value)
        elif value is None and name in ("options", "parameters", "args", "env_vars", "tool_allowlist"):
            continue
        raw[name] = value
    return raw


def _field_of(location: str) -> str:
    return location.split(".", 1)[0].split("[", 1)[0]


class ConfigRecordForm(forms.ModelForm[Any]):
    """Runs the configuration validation on the whole record; keeps the contract for saving."""

    kind: ClassVar[Kind]
    contract_fields: ClassVar[tuple[str, ...]]
    config_record: RecordConfig | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.existing_key: str | None = getattr(self.instance, self.kind.key_field) if self.instance.pk else None

    def raw_record(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        """The record as the file or the API would give it."""
        return _raw_from_cleaned(self.kind, cleaned, self.contract_fields)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # Names are checked by the configuration validation below (one message, not Django's second).
        self._validate_unique = False
        if self.errors:
            return cleaned
        raw = self.raw_record(cleaned)
        try:
            record = record_from_raw(self.kind, raw)
            record_validate(record, refs=config_references(), existing_key=self.existing_key)
        except ConfigInvalidError as exc:
            self.add_problems(exc)
            return cleaned
        self.config_record = record
        return cleaned

    def add_problems(self, exc: ConfigInvalidError) -> None:
        secret_fields = set()
        for problem in exc.problems:
            field = _field_of(problem.location)
            message = str(problem) if field not in self.fields or field != problem.location else problem.message
            self.add_error(field if field in self.fields else None, message)
            if SECRET_HINT in problem.message and field in self.fields:
                secret_fields.add(field)
        if secret_fields:
            # Never render a suspected secret back into the page: the field comes back empty.
            data = QueryDict(mutable=True)
            data.update(self.data)
            for field in secret_fields:
                data[self.add_prefix(field)] = ""
            self.data = data


class ConfigAdmin(ReadOnlyAdmin[_M]):
    """Shows configuration and refuses every write: the config file is the one source of truth.

    Staff see each record (view-only pages) with a note saying to edit the file and run
    `manage.py load_config`; add, change and delete are not offered, and their URLs answer 403.
    """

    kind: ClassVar[Kind]

    @classmethod
    def serve(cls, kind: Kind) -> None:
        """Makes this the admin of `kind`'s records (see `config_admin`)."""
        cls.kind = kind
        if "form" not in cls.__dict__:
            cls.form = _form(MODELS[kind], kind)

    @admin.display(description="readiness")
    def readiness(self, obj: _M) -> str:
        """A provider's, route's or MCP server's readiness, for the list's `readiness` column."""
        state = stored_readiness(obj)
        status, reasons = str(state.status), tuple(state.reasons)
        return status if not reasons or status == "disabled" else f"{status}: {'; '.join(reasons)}"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        messages.info(request, READ_ONLY)
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        messages.info(request, READ_ONLY)
        return super().change_view(request, object_id, form_url, extra_context)


_A = TypeVar("_A", bound=type[ConfigAdmin[Any]])


def config_admin(kind: Kind) -> Callable[[_A], _A]:
    """Registers an admin for `kind`'s records, with a form that runs the configuration validation
    (unless the admin declares its own)."""

    def register(admin_class: _A) -> _A:
        admin_class.serve(kind)
        admin.site.register(MODELS[kind], admin_class)
        return admin_class

    return register


def _form(model_: type[models.Model], kind_: Kind) -> type[ConfigRecordForm]:
    names = contract_fields(kind_)
    # URLs are plain text here: the configuration validation checks them (http(s), no credentials).
    url_fields = {
        field.name: forms.CharField for field in model_._meta.concrete_fields if isinstance(field, models.URLField)
    }
    meta = type("Meta", (), {"model": model_, "fields": list(names), "field_classes": url_fields})
    form: type[ConfigRecordForm] = type(
        f"{model_.__name__}Form", (ConfigRecordForm,), {"Meta": meta, "kind": kind_, "contract_fields": names}
    )
    return form


@config_admin(Kind.PROVIDER)
class ProviderAdmin(ConfigAdmin[Provider]):
    list_display = ["name", "kind", "api_key_env", "credential", "readiness", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "api_key_env", "base_url"]

    @admin.display(description="credential")
    def credential(self, obj: Provider) -> str:
        return provider_credential(provider_config(obj))


@config_admin(Kind.ROUTE)
class RouteAdmin(ConfigAdmin[ModelRoute]):
    list_display = ["alias", "provider", "model_id", "context_window_tokens", "is_default", "readiness", "enabled"]
    list_filter = ["provider", "is_default", "enabled"]
    list_select_related = ["provider", "status"]
    search_fields = ["alias", "model_id", "provider__name"]


@config_admin(Kind.TOOL)
class ToolAdmin(ConfigAdmin[ToolSpec]):
    list_display = ["name", "description", "requires_approval", "builtin", "mcp", "client", "enabled"]
    list_filter = ["requires_approval", "client", "enabled"]
    search_fields = ["name", "description"]


@config_admin(Kind.SKILL)
class SkillAdmin(ConfigAdmin[SkillSpec]):
    list_display = ["name", "description", "instructions_path", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "description", "instructions_path"]
    filter_horizontal = ["tools"]


@config_admin(Kind.MCP_SERVER)
class McpServerAdmin(ConfigAdmin[McpServerSpec]):
    list_display = ["name", "transport", "command", "url", "readiness", "enabled"]
    list_filter = ["transport", "enabled"]
    search_fields = ["name", "command", "url"]


@config_admin(Kind.AGENT)
class AgentAdmin(ConfigAdmin[AgentProfile]):
    list_display = ["name", "description", "route", "enabled"]
    list_filter = ["route", "enabled"]
    list_select_related = ["route"]
    search_fields = ["name", "description", "route__alias"]
    filter_horizontal = ["tools", "skills", "mcp_servers"]


class TeamMemberFormSet(BaseInlineFormSet[TeamMember, Team, Any]):
    """Checks the member list with the team (lead is a member, no agent twice) before anything is saved."""

    def ordered_members(self) -> list[str]:
        rows = [
            (form.cleaned_data["position"], form.cleaned_data["agent"].name)
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.cleaned_data.get("agent")
        ]
        return [name for _, name in sorted(rows)]

    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        team = self.instance
        lead = team.lead.name if team.lead_id else None
        if lead is None:
            return
        existing = None if team._state.adding else Team.objects.values_list("name", flat=True).get(pk=team.pk)
        record = TeamConfig(
            name=team.name, description=team.description, lead=lead, members=tuple(self.ordered_members())
        )
        try:
            record_validate(record, refs=config_references(), existing_key=existing)
        except ConfigInvalidError as exc:
            member_problems = [p for p in exc.problems if _field_of(p.location) in ("members", "lead")]
            if member_problems:
                raise ValidationError([str(problem) for problem in member_problems]) from None


class TeamMemberInline(admin.TabularInline[TeamMember, Team]):
    model = TeamMember
    formset = TeamMemberFormSet
    fields = ["position", "agent"]
    ordering = ["position"]
    extra = 1
    autocomplete_fields = ["agent"]


# A team's fields but its member list, which the inline (TeamMemberFormSet) edits.
_TEAM_FORM_FIELDS = tuple(name for name in contract_fields(Kind.TEAM) if name != "members")


class TeamForm(ConfigRecordForm):
    kind = Kind.TEAM
    contract_fields = _TEAM_FORM_FIELDS

    class Meta:
        model = Team
        fields = list(_TEAM_FORM_FIELDS)

    def raw_record(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        # The member list is checked with the inline (TeamMemberFormSet); here the lead stands in.
        lead = cleaned.get("lead")
        return {**super().raw_record(cleaned), "members": [lead.name] if lead else []}


@config_admin(Kind.TEAM)
class TeamAdmin(ConfigAdmin[Team]):
    form = TeamForm
    inlines = [TeamMemberInline]
    list_display = ["name", "description", "lead", "enabled"]
    list_filter = ["enabled"]
    list_select_related = ["lead"]
    search_fields = ["name", "description", "lead__name"]
