"""The other pages: usage charts, long-term memory, the configuration's readiness, the account's API tokens.

Each view reads through selectors (and the bootstrap); the memory and token forms post back to their
page, which calls one service and redirects (post/redirect/get), showing the service's own message
when it refuses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.generic import TemplateView

from core.accounts.selectors import token_list
from core.accounts.services import token_create, token_revoke
from core.api.acting import acting_user
from core.conversation.selectors import runs_list, sessions_list
from core.errors import DomainError, InvalidInputError, NotFoundError
from core.models import Run, RunPurpose, RunStatus
from memory.models import DailyEpisode
from memory.search import memory_search
from memory.selectors import episode_list, memory_list
from memory.services import memory_delete, memory_forget, memory_pin, memory_restore
from runtime.bootstrap.compose import bootstrap_read
from telemetry.models import pico_usd_to_decimal
from telemetry.selectors import UsageCounts, usage_summary
from web.templatetags.web_format import usd

CHART_WIDTH = 300
CHART_HEIGHT = 110
TOP_SESSIONS = 10
AXIS_LABEL = 16
MEMORY_PAGE = 100
UPKEEP_PURPOSES = (RunPurpose.COMPACTION, RunPurpose.EPISODE, RunPurpose.FACTS)
# The newest upkeep runs of each purpose read for the failures' list (enough for every recent session).
UPKEEP_RUNS_READ = 200


@dataclass(frozen=True)
class Bar:
    """One bar of a server-drawn SVG chart (coordinates in the chart's viewBox)."""

    label: str
    value: int
    text: str
    x: float
    y: float
    width: float
    height: float

    @property
    def short(self) -> str:
        """The label under the axis, cut so that the first and the last fit side by side on a phone."""
        return self.label if len(self.label) <= AXIS_LABEL else self.label[: AXIS_LABEL - 1] + "…"


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    total: str
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def bar_chart(title: str, rows: list[tuple[str, int, str]], total: str) -> Chart:
    """Bars scaled to the largest value; each row is (label, value, the value as a person reads it)."""
    top = max((value for _, value, _ in rows), default=0) or 1
    slot = CHART_WIDTH / max(len(rows), 1)
    plot = CHART_HEIGHT - 20
    bars = [
        Bar(
            label=label,
            value=value,
            text=text,
            x=round(index * slot + slot * 0.1, 2),
            y=round(plot - plot * value / top, 2),
            width=round(slot * 0.8, 2),
            height=round(plot * value / top, 2),
        )
        for index, (label, value, text) in enumerate(rows)
    ]
    return Chart(title=title, bars=bars, total=total)


def _cost(counts: UsageCounts) -> str:
    return f"{usd(counts.cost)}{' (partial: some calls had no price)' if counts.cost_partial else ''}"


class UsageView(LoginRequiredMixin, TemplateView):
    """Tokens and cost per day, per model, per session, per purpose (chat and each kind of upkeep and
    delegation) and per agent, as SVG bar charts with their totals."""

    template_name = "web/usage.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        owner = acting_user(self.request)
        summary = usage_summary(owner=owner)
        days = summary.last_30_days
        month = UsageCounts.total(days)
        # Every purpose, in the order a run can have it, with zeros where nothing was spent on it.
        spent = {item.purpose: item for item in summary.by_purpose}
        purposes = [(label, spent.get(value, UsageCounts())) for value, label in RunPurpose.choices]
        top = list(
            sessions_list(owner=owner)
            .filter(usage__isnull=False)
            .select_related("usage")
            .order_by("-usage__total_tokens")[:TOP_SESSIONS]
        )
        context.update(
            page="usage",
            summary=summary,
            month=month,
            month_cost=_cost(month),
            all_time_cost=_cost(summary.all_time),
            day_tokens=bar_chart(
                "Tokens per day (last 30 days)",
                [(f"{d.day:%b %d}", d.total_tokens, f"{d.total_tokens} tokens") for d in days],
                f"{month.total_tokens} tokens in 30 days",
            ),
            day_cost=bar_chart(
                "Cost per day (last 30 days, USD)",
                [(f"{d.day:%b %d}", d.cost_pico_usd, usd(d.cost)) for d in days],
                _cost(month),
            ),
            model_tokens=bar_chart(
                "Tokens per model (all time)",
                [(m.model, m.all_time.total_tokens, f"{m.all_time.total_tokens} tokens") for m in summary.by_model],
                f"{summary.all_time.total_tokens} tokens",
            ),
            session_tokens=bar_chart(
                "Tokens per conversation (top 10)",
                [(str(s), s.usage.total_tokens, f"{s.usage.total_tokens} tokens") for s in top],
                f"{summary.all_time.total_tokens} tokens in all",
            ),
            sessions=[(s, pico_usd_to_decimal(s.usage.cost_pico_usd)) for s in top],
            purpose_tokens=bar_chart(
                "Tokens per purpose (all time)",
                [(label, counts.total_tokens, f"{counts.total_tokens} tokens") for label, counts in purposes],
                f"{summary.all_time.total_tokens} tokens",
            ),
            agent_tokens=bar_chart(
                "Tokens per agent (all time)",
                [(a.agent, a.total_tokens, f"{a.total_tokens} tokens") for a in summary.by_agent],
                f"{summary.all_time.total_tokens} tokens",
            ),
            purposes=purposes,
            agents=summary.by_agent,
        )
        return context


class FormPage(LoginRequiredMixin, TemplateView, ABC):
    """A page whose forms post back to it: one service call, then a redirect to the page (or the refusal)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            self.act(request)
        except DomainError as error:
            messages.error(request, str(error))
        return HttpResponseRedirect(request.get_full_path())

    @abstractmethod
    def act(self, request: HttpRequest) -> None:
        """Call the one service the posted form asks for; a refusal is a DomainError."""
        raise NotImplementedError


def _int(request: HttpRequest, name: str) -> int:
    value = request.POST.get(name, "")
    if not value.isdigit() or len(value) > 18:
        raise InvalidInputError.for_field(name, f"{value!r} is not a record id; use the page's buttons")
    return int(value)


@dataclass(frozen=True)
class EpisodeRef:
    """A conversation a whole-day episode covers, as the memory page links it."""

    session_id: str
    title: str
    first_seq: int
    last_seq: int


def _episode_rows(owner: AbstractBaseUser, episodes: list[DailyEpisode]) -> list[tuple[DailyEpisode, list[EpisodeRef]]]:
    """Each episode with the conversations it covers that are still the owner's (one query for their titles)."""
    wanted = {ref["session"] for episode in episodes for ref in episode.session_refs}
    titles = {
        str(pk): title or "Untitled conversation"
        for pk, title in sessions_list(owner=owner).filter(pk__in=wanted).values_list("pk", "title")
    }
    return [
        (
            episode,
            [
                EpisodeRef(ref["session"], titles[ref["session"]], ref["first_seq"], ref["last_seq"])
                for ref in episode.session_refs
                if ref["session"] in titles
            ],
        )
        for episode in episodes
    ]


def _upkeep_failures(owner: AbstractBaseUser) -> list[Run]:
    """The upkeep runs whose summary, episode or facts failed and were not written since: for each
    session (an episode's: the owner) and purpose, its latest run when that one failed."""
    failures: list[Run] = []
    for purpose in UPKEEP_PURPOSES:
        seen: set[object] = set()
        for run in runs_list(owner=owner, purpose=purpose).select_related("session")[:UPKEEP_RUNS_READ]:
            if run.session_id in seen:
                continue
            seen.add(run.session_id)
            if run.status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
                failures.append(run)
    return sorted(failures, key=lambda run: run.created, reverse=True)


class MemoryView(FormPage):
    """Long-term memories (search, pin, forget and undo it, delete for good), the daily episodes with
    the conversations they cover, and the upkeep that failed (with its reason)."""

    template_name = "web/memory.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        owner = acting_user(self.request)
        query = self.request.GET.get("q", "").strip()
        if query:
            memories = [hit.memory for hit in memory_search(query, limit=50, owner_id=owner.pk)]
        else:
            memories = list(memory_list(owner=owner).order_by("-pinned", "-created", "-id")[:MEMORY_PAGE])
        forgotten = list(memory_list(owner=owner, forgotten=True)[:MEMORY_PAGE])
        episodes = list(episode_list(owner=owner)[:30])
        context.update(
            page="memory",
            query=query,
            memories=memories,
            forgotten=forgotten,
            episodes=_episode_rows(owner, episodes),
            upkeep_failures=_upkeep_failures(owner),
        )
        return context

    def act(self, request: HttpRequest) -> None:
        owner = acting_user(request)
        memory_id = _int(request, "memory")
        action = request.POST.get("action")
        if action == "forget":  # soft: listed under "Forgotten", where it can be restored
            memory_forget(memory_id=memory_id, owner=owner)
        elif action == "restore":
            memory_restore(memory_id=memory_id, owner=owner)
        elif action == "delete":
            memory_delete(memory_id=memory_id, owner=owner)
        elif action in ("pin", "unpin") and not memory_pin(memory_ids=[memory_id], pinned=action == "pin", owner=owner):
            raise NotFoundError.for_field("memory", f"no long-term memory {memory_id}")


class ConfigView(LoginRequiredMixin, TemplateView):
    """The configuration as stored, each record with its readiness and reasons; the file's problems."""

    template_name = "web/config.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        user = acting_user(self.request)
        staff = bool(getattr(user, "is_staff", False))
        boot = bootstrap_read(owner_id=user.pk, staff=staff)
        config = boot.config
        sections = [
            ("Providers", config.providers),
            ("Routes", config.routes),
            ("Tools", config.tools),
            ("MCP servers", config.mcp_servers),
            ("Skills", config.skills),
            ("Agents", config.agents),
            ("Teams", config.teams),
        ]
        context.update(
            file_state=config.file.state.replace("_", " "),
            page="config",
            boot=boot,
            config=config,
            sections=sections,
            staff=staff,
            views=boot.views,
        )
        return context


class AccountView(FormPage):
    """The user's API tokens: list, create (the key shown once, on the answer page only), revoke."""

    template_name = "web/account.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(page="account", tokens=list(token_list(user=acting_user(self.request))))
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.POST.get("action") != "create":
            return super().post(request, *args, **kwargs)
        try:
            created = token_create(user=acting_user(request), name=request.POST.get("name", ""))
        except DomainError as error:
            messages.error(request, str(error))
            return HttpResponseRedirect(reverse("web-account"))
        # Rendered once into this answer (never stored, never in a redirect or a message).
        context = self.get_context_data(**kwargs)
        context["new_key"] = created.key
        context["new_token"] = created.token
        response = self.render_to_response(context)
        response["Cache-Control"] = "no-store"
        return response

    def act(self, request: HttpRequest) -> None:
        token_revoke(user=acting_user(request), token_id=_int(request, "token"))
