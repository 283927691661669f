"""Settings for Agent Chat, read from the environment (and an optional `.env`) once at start-up.

Every variable is documented in `.env.example`. A malformed value raises `SettingsError`, which
`manage.py` prints as a single line.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
import environ

from agentchat_site.envconfig import (
    SYNCHRONOUS_LEVELS,
    SettingsError,
    read_bool,
    read_choice,
    read_database,
    read_hosts,
    read_int,
    read_secret_key,
    read_str,
    read_timezone,
)

# Django's classes that the type stubs declare generic (ModelAdmin[Model], Paginator[...], inlines, model
# forms and formsets) become subscriptable at run time too, so code writes them once, as mypy reads them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = read_bool(env, "DEBUG", default=False)
SECRET_KEY = read_secret_key(env, "SECRET_KEY", key_file=VAR_DIR / "secret_key", debug=DEBUG)
ALLOWED_HOSTS = read_hosts(env, "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
HTTPS = read_bool(env, "AGENTCHAT_HTTPS", default=False)

AGENTCHAT_CONFIG = Path(
    read_str(env, "AGENTCHAT_CONFIG", default=str(BASE_DIR / "config" / "agentchat.example.toml"))
).resolve()
AGENTCHAT_SKILLS_DIR = Path(read_str(env, "AGENTCHAT_SKILLS_DIR", default=str(BASE_DIR / "skills"))).resolve()
AGENTCHAT_TIMEZONE = read_timezone(env, "AGENTCHAT_TIMEZONE", default="UTC")
AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = read_int(
    env, "AGENTCHAT_COMPACTION_THRESHOLD_PERCENT", default=80, minimum=1, maximum=100
)
# The byte budget of one page of messages (the message list and restore's first page of the tail).
AGENTCHAT_MESSAGE_PAGE_BYTES = read_int(
    env, "AGENTCHAT_MESSAGE_PAGE_BYTES", default=1_048_576, minimum=4_096, maximum=64 * 1_048_576
)
# Imports (core/conversation/importing/): the largest upload `POST /api/import/` takes (bytes), and
# where an upload waits for the worker that imports it.
AGENTCHAT_IMPORT_MAX_BYTES = read_int(
    env, "AGENTCHAT_IMPORT_MAX_BYTES", default=200 * 1_048_576, minimum=1_024, maximum=64 * 1_073_741_824
)
AGENTCHAT_IMPORT_DIR = VAR_DIR / "imports"
# A run's event stream (runtime/streaming/): an idle stream sends a comment line this often (ms) so
# that proxies keep it open; on SQLite the process's stream hub looks for new events of every
# watched run this often (ms), in one query.
AGENTCHAT_STREAM_HEARTBEAT_MS = read_int(
    env, "AGENTCHAT_STREAM_HEARTBEAT_MS", default=15_000, minimum=50, maximum=300_000
)
AGENTCHAT_STREAM_POLL_MS = read_int(env, "AGENTCHAT_STREAM_POLL_MS", default=50, minimum=5, maximum=1_000)

# --- Turns in workers (runtime/worker/) ---------------------------------------------------
# How many worker processes `make serve` supervises.
AGENTCHAT_WORKERS = read_int(env, "AGENTCHAT_WORKERS", default=2, minimum=1, maximum=64)
# A running run's lease: its worker renews it on a timer (a third of this); one not renewed for
# this long belongs to a dead worker and the sweeper ends the run `interrupted`.
AGENTCHAT_RUN_LEASE_MS = read_int(env, "AGENTCHAT_RUN_LEASE_MS", default=15_000, minimum=1_000, maximum=600_000)
# How often an idle worker looks for a queued turn (at most 0.25 s, so a turn starts promptly).
AGENTCHAT_WORKER_POLL_MS = read_int(env, "AGENTCHAT_WORKER_POLL_MS", default=200, minimum=10, maximum=250)
# A turn still queued after this long is ended `interrupted` instead of run late.
AGENTCHAT_QUEUED_RUN_EXPIRY_S = read_int(env, "AGENTCHAT_QUEUED_RUN_EXPIRY_S", default=600, minimum=5, maximum=86_400)
# A tool call waiting this long for its approval is denied, with that reason (the sweeper).
AGENTCHAT_APPROVAL_TIMEOUT = read_int(env, "AGENTCHAT_APPROVAL_TIMEOUT", default=3_600, minimum=1, maximum=604_800)
# The longest one tool call may run (an MCP call's timeout), and the most characters of its result
# the model gets back (the rest is cut, with a marker saying so).
AGENTCHAT_TOOL_TIMEOUT_S = read_int(env, "AGENTCHAT_TOOL_TIMEOUT_S", default=60, minimum=1, maximum=3_600)
AGENTCHAT_TOOL_RESULT_MAX_CHARS = read_int(
    env, "AGENTCHAT_TOOL_RESULT_MAX_CHARS", default=20_000, minimum=100, maximum=1_000_000
)
# The longest a run may stream; past it the worker ends it `cancelled`, saying why.
AGENTCHAT_RUN_MAX_WALL_S = read_int(env, "AGENTCHAT_RUN_MAX_WALL_S", default=900, minimum=5, maximum=86_400)
# Turns one user may start per minute (DRF throttling) and how many of their runs may be open at once.
AGENTCHAT_TURNS_PER_MINUTE = read_int(env, "AGENTCHAT_TURNS_PER_MINUTE", default=60, minimum=1, maximum=100_000)
AGENTCHAT_MAX_OPEN_RUNS_PER_USER = read_int(
    env, "AGENTCHAT_MAX_OPEN_RUNS_PER_USER", default=8, minimum=1, maximum=10_000
)
# How deep a team's delegations may nest: a lead's member is depth 1, that member's member depth 2.
AGENTCHAT_DELEGATION_MAX_DEPTH = read_int(env, "AGENTCHAT_DELEGATION_MAX_DEPTH", default=2, minimum=0, maximum=8)
# Finished task rows are pruned after this long (the run and its trace are the record that stays).
AGENTCHAT_TASK_RESULTS_KEEP_S = read_int(
    env, "AGENTCHAT_TASK_RESULTS_KEEP_S", default=3_600, minimum=0, maximum=30 * 86_400
)
# On SIGINT/SIGTERM a worker lets its running turn finish for this long, then ends it `interrupted`.
AGENTCHAT_SHUTDOWN_GRACE_S = read_int(env, "AGENTCHAT_SHUTDOWN_GRACE_S", default=20, minimum=0, maximum=3_600)

# Django's task framework (the django-tasks backport): turns are `runtime.worker.tasks.run_turn`,
# stored in this database by django-tasks-db and taken by `manage.py worker`. Another backend (RQ,
# Celery) is a change of BACKEND here; the run's lease, not the task row, stays the source of truth.
TASKS: dict[str, dict[str, Any]] = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_tasks",
    "django_tasks_db",
    "django_htmx",
    "core",
    "memory",
    "telemetry",
    "runtime",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # request.htmx: the chat page answers htmx's refresh with the conversation alone.
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: it turns a locked-out sign-in into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "agentchat_site.urls"
WSGI_APPLICATION = "agentchat_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "web.context_processors.config_load",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
SQLITE_SYNCHRONOUS = read_choice(env, "SQLITE_SYNCHRONOUS", default="NORMAL", choices=SYNCHRONOUS_LEVELS)
SQLITE_BUSY_TIMEOUT_MS = read_int(env, "SQLITE_BUSY_TIMEOUT_MS", default=30_000, minimum=100, maximum=600_000)

_database: dict[str, Any] = read_database(env, "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'agentchat.sqlite3'}")
if _database["ENGINE"] == "django.db.backends.sqlite3":
    Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    _database["OPTIONS"] = {
        # Writers take the lock at BEGIN and queue on the busy timeout instead of failing
        # later with "database is locked" when a read transaction tries to upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            f"PRAGMA synchronous={SQLITE_SYNCHRONOUS};"
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS};"
            "PRAGMA foreign_keys=ON;"
        ),
    }
    # Tests run on a real file so that several OS processes can share the test database.
    _database["TEST"] = {"NAME": str(VAR_DIR / f"test_{Path(_database['NAME']).stem}.sqlite3")}
else:
    _database.setdefault("CONN_HEALTH_CHECKS", True)
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out account or address is refused before its password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed sign-ins (the login pages and bad API tokens) are counted in the database, so the limit
# holds across processes: AGENTCHAT_LOGIN_FAILURE_LIMIT failures per account or per client address
# lock it out for AGENTCHAT_LOGIN_COOLOFF_MINUTES (answer 429).
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = read_int(env, "AGENTCHAT_LOGIN_FAILURE_LIMIT", default=5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(
    minutes=read_int(env, "AGENTCHAT_LOGIN_COOLOFF_MINUTES", default=15, minimum=1, maximum=7 * 24 * 60)
)
AXES_LOCKOUT_PARAMETERS = "core.accounts.throttle.lockout_parameters"
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_VERBOSE = False  # no start-up banner; a failure still logs the account and address it counts against

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Times to the second in the admin (web/formats/en/formats.py).
FORMAT_MODULE_PATH = ["web.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on a missing root before collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the browsable API reads it to send unsafe requests
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if HTTPS:
    # Behind TLS (a reverse proxy on another machine): cookies only over HTTPS, and HSTS.
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- REST framework and OpenAPI -------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: DRF takes the WWW-Authenticate header of the first class, so a missing or bad token
    # answers 401 with `WWW-Authenticate: Token` (SessionAuthentication has no header: 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.PagePagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.BoundedJSONParser",
        "core.api.parsers.BoundedFormParser",
        "core.api.parsers.BoundedMultiPartParser",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Per user (runtime.api.views.TurnThrottle); the cache is per process, like the one ASGI server.
    "DEFAULT_THROTTLE_RATES": {"turns": f"{AGENTCHAT_TURNS_PER_MINUTE}/min"},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Chat API",
    "DESCRIPTION": "Sessions, messages, checkpoints, runs, memory, telemetry and configuration.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # System fonts: the page loads nothing from outside (web/templates/web/redoc.html drops Google Fonts).
    "REDOC_UI_SETTINGS": {
        "theme": {
            "typography": {
                "fontFamily": "system-ui, -apple-system, 'Segoe UI', sans-serif",
                "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', sans-serif"},
                "code": {"fontFamily": "ui-monospace, 'DejaVu Sans Mono', monospace"},
            }
        }
    },
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        # Sessions, runs and readiness reports each have a `status`; name each choice set after its record.
        "SessionStatusEnum": "core.conversation.models.SessionStatus",
        "RunStatusEnum": "core.conversation.models.RunStatus",
        "ReadinessStatusEnum": ["ready", "blocked", "disabled"],
        # Providers, memories and attachments each have a `kind`; episodes a `source`.
        "ProviderKindEnum": "core.config.models.ProviderKind",
        "MemoryKindEnum": "memory.models.MemoryKind",
        "AttachmentKindEnum": "memory.models.AttachmentKind",
        "EpisodeSourceEnum": "memory.models.EpisodeSource",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": read_choice(env, "LOG_LEVEL", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    },
}

__all__ = ["SettingsError"]
