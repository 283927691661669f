"""Run an import: expand the files, read every one through first, then store each conversation on its own.

A file that is not what its format says stops the whole import before anything is written (the
first pass reads every file to the end, streamed: a conversation at a time, never the file whole).
A conversation that cannot be read is skipped with the reason and the others are stored.
`import_job_*` keep an `ImportJob` (the API's background import) in step with the run.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import ijson
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from core.config.models import ModelRoute
from core.config.selectors import route_resolve
from core.conversation.importing import agentchat, chatgpt, librechat, openwebui
from core.conversation.importing.models import ImportFormat, ImportJob, ImportStatus
from core.conversation.importing.shapes import ConversationSkippedError, FileMalformedError, text_of
from core.conversation.importing.writer import Outcome, conversation_import
from core.conversation.selectors import OwnerScope, owned
from core.conversation.services import message_index_catch_up
from core.errors import InvalidInputError, NotFoundError

FORMATS: dict[str, ModuleType] = {module.FORMAT: module for module in (chatgpt, openwebui, librechat, agentchat)}
WHOLE_FILE = "(file)"
logger = logging.getLogger(__name__)
# A job's counters are written after this many conversations (and at the end).
PROGRESS_EVERY = 20
# How long one transaction stores conversations before it commits (each has its own savepoint).
BATCH_SECONDS = 0.5


@dataclass(frozen=True)
class Source:
    """One JSON document to read: a file, or a member of a zip (ChatGPT's export arrives zipped)."""

    name: str
    path: Path
    member: str | None = None

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        if self.member is None:
            with self.path.open("rb") as handle:
                yield handle
        else:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as handle:
                yield handle


def sources_expand(paths: list[Path]) -> list[Source]:
    """Every document named: a file, each `conversations*.json` of a folder or zip (the split export), in name order."""
    sources: list[Source] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("conversations*.json"))
            if not found:
                raise InvalidInputError.for_field("file", f"{path}: a folder without conversations*.json files")
            sources += [Source(str(item), item) for item in found]
        elif path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = sorted(
                    name
                    for name in archive.namelist()
                    if Path(name).name.startswith("conversations") and name.endswith(".json")
                )
            if not members:
                raise InvalidInputError.for_field("file", f"{path}: a zip without conversations*.json inside")
            sources += [Source(f"{path}:{member}", path, member) for member in members]
        elif path.is_file():
            sources.append(Source(str(path), path))
        else:
            raise InvalidInputError.for_field("file", f"{path}: no such file; give the path of an export")
    return sources


def _detected(first: tuple[str, str, Any], events: Iterator[tuple[str, str, Any]]) -> str | None:
    _, event, _ = first
    if event == "start_array":
        for prefix, kind, value in events:
            if prefix == "item" and kind == "map_key":
                if value in ("mapping", "current_node", "conversation_id"):
                    return chatgpt.FORMAT
                if value == "chat":
                    return openwebui.FORMAT
                if value in ("conversationId", "messagesTree"):
                    return librechat.FORMAT
            elif prefix in ("", "item") and kind in ("end_array", "end_map"):
                return None
    elif event == "start_map":
        for prefix, kind, value in events:
            if prefix == "" and kind == "map_key" and value == "schema":
                return agentchat.FORMAT
            if prefix == "" and kind == "map_key" and value in ("conversationId", "messagesTree"):
                return librechat.FORMAT
    return None


def _events(source: Source, handle: IO[bytes]) -> tuple[tuple[str, str, Any], Iterator[tuple[str, str, Any]]]:
    """The first parse event and the rest; FileMalformedError for an empty file."""
    if not handle.read(1):
        raise FileMalformedError(source.name, WHOLE_FILE, "is empty; give an export file")
    handle.seek(0)
    events = ijson.parse(handle, use_float=True)
    return next(events), events


def _not_json(source: Source, error: Exception) -> FileMalformedError:
    return FileMalformedError(source.name, WHOLE_FILE, f"is not valid JSON ({str(error).splitlines()[0]})")


def format_detect(source: Source) -> str:
    """The format of `source`, read from its first conversation's keys; FileMalformedError when none fits."""
    with source.open() as handle:
        try:
            first, events = _events(source, handle)
            found = _detected(first, events)
        except ijson.JSONError as error:
            raise _not_json(source, error) from None
    if found is None and first[1] == "start_array":
        return chatgpt.FORMAT  # an empty list: nothing to import whatever its format
    if found is None:
        raise FileMalformedError(
            source.name,
            WHOLE_FILE,
            "is not a ChatGPT, Open WebUI, LibreChat or Agent Chat export; name it with --format",
        )
    return found


def _shape_checked(fmt: str, source: Source) -> str:
    """The prefix of `source`'s conversations, once its top level fits `fmt`; FileMalformedError otherwise."""
    with source.open() as handle:
        try:
            first, events = _events(source, handle)
            if fmt != agentchat.FORMAT:
                if first[1] == "start_array":
                    return "item"
                if first[1] == "start_map" and fmt == librechat.FORMAT:
                    return ""
                raise FileMalformedError(
                    source.name, WHOLE_FILE, f"must be a JSON array of conversations for the {fmt} format"
                )
            if first[1] != "start_map" or next(events, None) != ("", "map_key", "schema"):
                raise FileMalformedError(source.name, "schema", "missing; an Agent Chat export starts with it")
            schema = next(events, None)
        except ijson.JSONError as error:
            raise _not_json(source, error) from None
    if schema is None or schema[2] != agentchat.SCHEMA:
        found = schema[2] if schema is not None else None
        raise FileMalformedError(source.name, "schema", f"is {found!r}; this version reads {agentchat.SCHEMA!r}")
    return agentchat.ITEMS


def raw_conversations(fmt: str, source: Source, *, check_only: bool = False) -> Iterator[object]:
    """The conversations of `source` one at a time, as parsed JSON; FileMalformedError for a file-level fault.

    `check_only` reads the whole file and yields nothing: a prefix no value has, so the parser builds no object.
    """
    prefix = _shape_checked(fmt, source)
    with source.open() as handle:
        try:
            # Straight from the file: the C parser builds each conversation without a Python step per token.
            yield from ijson.items(handle, f"{prefix}.-" if check_only else prefix, use_float=True)
        except ijson.JSONError as error:
            raise _not_json(source, error) from None


@dataclass
class ImportReport:
    """What an import did: one outcome per conversation, in file order."""

    files: list[tuple[str, str]] = field(default_factory=list)  # (name, format)
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def imported(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.imported]

    @property
    def skipped(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.imported]

    @property
    def messages(self) -> int:
        return sum(outcome.messages for outcome in self.outcomes)

    @property
    def branches(self) -> int:
        return sum(outcome.branches for outcome in self.outcomes)


def _skipped(raw: object, reason: str) -> Outcome:
    record = raw if isinstance(raw, dict) else {}
    source_id = next(
        (text_of(record.get(key)) for key in ("conversation_id", "conversationId", "id") if text_of(record.get(key))),
        "",
    )
    return Outcome(text_of(record.get("title")), source_id, False, reason, 0, 0)


def _batch_stored(
    conversations: Iterator[object],
    module: ModuleType,
    report: ImportReport,
    *,
    owner: AbstractBaseUser,
    route: ModelRoute,
    dry_run: bool,
    progress: Callable[[ImportReport], None] | None,
) -> bool:
    """Store conversations for up to BATCH_SECONDS in one transaction, each in its own savepoint (so one that
    fails leaves the others); answers whether more remain. One commit per batch instead of per conversation."""
    deadline = time.monotonic() + BATCH_SECONDS
    with transaction.atomic():
        for raw in conversations:
            try:
                conversation = module.convert(raw)
            except ConversationSkippedError as skipped:
                outcome = _skipped(raw, skipped.reason)
            else:
                outcome = conversation_import(
                    owner=owner, conversation=conversation, default_route=route, dry_run=dry_run
                )
            report.outcomes.append(outcome)
            if progress is not None and len(report.outcomes) % PROGRESS_EVERY == 0:
                progress(report)
            if time.monotonic() >= deadline:
                return True
    return False


def import_run(
    *,
    owner: AbstractBaseUser,
    paths: list[Path],
    fmt: str = ImportFormat.AUTO,
    dry_run: bool = False,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import every conversation of `paths` for `owner`; InvalidInputError (nothing written) for a malformed file."""
    if fmt not in ImportFormat.values:
        raise InvalidInputError.for_field(
            "format", f"{fmt!r} is not a format; use one of {', '.join(ImportFormat.values)}"
        )
    route = route_resolve(None, enabled_only=False)
    report = ImportReport()
    for source in sources_expand(paths):
        report.files.append((source.name, format_detect(source) if fmt == ImportFormat.AUTO else fmt))
    # The first pass reads every file to the end: a fault anywhere stops the import before any write.
    for (_, found), source in zip(report.files, sources_expand(paths), strict=True):
        for _ in raw_conversations(found, source, check_only=True):
            pass
    for (_, found), source in zip(report.files, sources_expand(paths), strict=True):
        module = FORMATS[found]
        conversations = raw_conversations(found, source)
        while _batch_stored(
            conversations, module, report, owner=owner, route=route, dry_run=dry_run, progress=progress
        ):
            continue
    if not dry_run:
        # The imported messages are indexed for search once, here, not message by message.
        message_index_catch_up()
    return report


# --- Jobs (the API's background imports) ------------------------------------------------------


def _upload_store(directory: Path, index: int, upload: UploadedFile) -> Path:
    target = directory / f"{index}.upload"
    with target.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return target


def import_job_create(
    *, owner: AbstractBaseUser, uploads: list[UploadedFile], fmt: str = ImportFormat.AUTO, dry_run: bool = False
) -> ImportJob:
    """Store the uploads under the import folder and queue their import; over the cap or empty is refused."""
    if fmt not in ImportFormat.values:
        raise InvalidInputError.for_field(
            "format", f"{fmt!r} is not a format; use one of {', '.join(ImportFormat.values)}"
        )
    if not uploads:
        raise InvalidInputError.for_field("file", "required; send the export as a multipart file field named file")
    size = sum(upload.size or 0 for upload in uploads)
    cap = settings.AGENTCHAT_IMPORT_MAX_BYTES
    if size > cap:
        raise InvalidInputError.for_field(
            "file", f"is {size} bytes; uploads are capped at {cap} bytes (AGENTCHAT_IMPORT_MAX_BYTES)"
        )
    job_id = uuid.uuid4()
    directory = Path(settings.AGENTCHAT_IMPORT_DIR) / str(job_id)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        paths = [_upload_store(directory, index, upload) for index, upload in enumerate(uploads)]
        with transaction.atomic():
            return ImportJob.objects.create(
                id=job_id,
                owner_id=owner.pk,
                format=fmt,
                dry_run=dry_run,
                file_names=[upload.name or f"upload {index}" for index, upload in enumerate(uploads)],
                paths=[str(path) for path in paths],
                size_bytes=size,
            )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def import_job_get(*, job_id: uuid.UUID | str, owner: OwnerScope = None) -> ImportJob:
    """One import job of `owner`, or NotFoundError (another user's too)."""
    try:
        key = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
        return owned(ImportJob.objects.all(), owner).get(pk=key)
    except (ValueError, ImportJob.DoesNotExist):
        raise NotFoundError.for_field("import", f"no import {job_id}") from None


def _job_progress(job_id: uuid.UUID, report: ImportReport) -> None:
    with transaction.atomic():
        ImportJob.objects.filter(pk=job_id).update(
            conversations_seen=len(report.outcomes),
            conversations_imported=len(report.imported),
            conversations_skipped=len(report.skipped),
            messages_imported=report.messages,
        )


def import_job_execute(*, job_id: uuid.UUID | str) -> ImportJob:
    """Run a queued job (the worker's task): its counters move as it goes; its files are removed at the end."""
    job = import_job_get(job_id=job_id)
    with transaction.atomic():
        started = ImportJob.objects.filter(pk=job.pk, status=ImportStatus.QUEUED).update(
            status=ImportStatus.RUNNING, started_at=timezone.now()
        )
    if not started:
        return job  # another worker took it, or it already ran
    error = ""
    report = ImportReport()
    try:
        report = import_run(
            owner=job.owner,
            paths=[Path(path) for path in job.paths],
            fmt=job.format,
            dry_run=job.dry_run,
            progress=lambda current: _job_progress(job.pk, current),
        )
    except InvalidInputError as problem:
        error = str(problem)
    except Exception as problem:  # a worker must end its job whatever stopped it; the log keeps the trace
        logger.exception("import %s stopped", job.pk)
        error = f"the import stopped ({type(problem).__name__}); run it again: what was imported is skipped"
    finally:
        for folder in {Path(path).parent for path in job.paths}:  # the job's own folder under the import folder
            shutil.rmtree(folder, ignore_errors=True)
    _job_progress(job.pk, report)
    with transaction.atomic():
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED if error else ImportStatus.COMPLETED,
            error=error,
            report=[outcome.as_json() for outcome in report.outcomes],
            finished_at=timezone.now(),
        )
    return import_job_get(job_id=job.pk)
