"""Tollgate settings: everything comes from the environment (django-environ), and nothing else happens here.

Embedded default (no variables set): SQLite in var/, in-process caches and limits, Celery tasks run in-process.
Production: DATABASE_URL (PostgreSQL), REDIS_URL (shared caches, limits, Celery broker), SECRET_KEY, ALLOWED_HOSTS.

Importing this module writes nothing and parses no file but the embedded default's secret key, if it exists:
the data folder and that key are made by `manage.py setup` (`make run`, `make test`) or by the first
`manage.py serve` (gateway/local_files.py), and a config's general_settings reach the environment through the
entry points before this module runs (gateway/general_settings.py). Every setting the code reads is declared
here once and listed in the README's configuration table (tests/test_settings.py).
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

BASE_DIR = Path(__file__).resolve().parent.parent
# The embedded default's local data: its SQLite database, secret key, static files and spool.
VAR_DIR = Path(env.str("TOLLGATE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)
EMBEDDED = "DATABASE_URL" not in env.ENVIRON
# The embedded default generates one key and keeps it here, so sessions and encrypted secrets survive restarts.
SECRET_KEY_FILE = VAR_DIR / "secret_key"


def _secret_key() -> str:
    if "SECRET_KEY" in env.ENVIRON:
        return env.str("SECRET_KEY")
    if not EMBEDDED:
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is (production settings)")
    # Until `manage.py setup` (or the first serve) makes the file the key is empty, and Django refuses any use of
    # it (sessions, signing, encrypted provider keys) while everything else (migrate, check, cost) works.
    return SECRET_KEY_FILE.read_text().strip() if SECRET_KEY_FILE.is_file() else ""


SECRET_KEY = _secret_key()
# Provider API keys are encrypted at rest with this key (defaults to one derived from SECRET_KEY).
TOLLGATE_ENCRYPTION_KEY = env.str("TOLLGATE_ENCRYPTION_KEY", default="")
# The manage.py entry point sets it from a config's general_settings.master_key when the environment does not.
TOLLGATE_MASTER_KEY = env.str("TOLLGATE_MASTER_KEY", default="")
# The LiteLLM config.yaml `serve` imports when no --config is given.
TOLLGATE_CONFIG = env.str("TOLLGATE_CONFIG", default="")
# Seconds a client has to send its request headers before `serve` closes its connection (--header-timeout).
TOLLGATE_HEADER_TIMEOUT = env.float("TOLLGATE_HEADER_TIMEOUT", default=10.0)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "axes",
    # Two-factor sign-in for local admin accounts (gateway/two_factor.py).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "gateway",
    "keys",
    "pricing",
    "spend",
]

MIDDLEWARE = [
    "gateway.body_limit.BodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session's login gave a two-factor code (gateway/two_factor.py).
    "django_otp.middleware.OTPMiddleware",
    "gateway.two_factor.RequireTwoFactorMiddleware",
    # Changes made while serving a request are recorded as its login's or its API key's (gateway/audit.py).
    "gateway.audit.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a locked-out login into its refusal page (gateway/login_protection.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "gateway.urls"
ASGI_APPLICATION = "gateway.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env.str("DATABASE_URL", default="")
DATABASES = {
    "default": env.db_url_config(_database_url)
    if _database_url
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "tollgate.sqlite3"}
}
_database = DATABASES["default"]
_database.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
_database.setdefault("TEST", {})
# One test database per test process: concurrent test runs on one machine must not share (and destroy) one.
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the dashboard read while the ledger writes. IMMEDIATE takes the write lock as a transaction
    # begins: one that read first and wrote later would fail at once with "database is locked" whenever another
    # process was writing, instead of waiting its turn.
    _database["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        **_database.get("OPTIONS", {}),
    }
    # A real file, not :memory:, so threads and worker processes started by tests see the same data.
    _database["TEST"].setdefault("NAME", str(VAR_DIR / f"test_tollgate_{os.getpid()}.sqlite3"))
else:
    _database["TEST"].setdefault("NAME", f"test_{_database['NAME']}_{os.getpid()}")
    # A database that stops answering (not one that refuses) must fail the ledger's commit, not hang it.
    _database.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
# A read replica of the primary (PostgreSQL streaming replication): reports and the spend overview read the ledger
# from it; writes, budgets, the rollup, reconcile and retention stay on the primary (spend/routers.py). In tests it
# mirrors the test database.
_replica_url = env.str("DATABASE_REPLICA_URL", default="")
if _replica_url:
    _replica = env.db_url_config(_replica_url)
    _replica.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    DATABASES["replica"] = {**_replica, "CONN_MAX_AGE": _database["CONN_MAX_AGE"], "TEST": {"MIRROR": "default"}}
DATABASE_ROUTERS = ["spend.routers.PrimaryReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOGIN_URL = "admin:login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["keys.api.authentication.MasterKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["keys.api.authentication.IsMasterKey"],
    "DEFAULT_RENDERER_CLASSES": ["gateway.api.renderers.DecimalJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["gateway.api.parsers.DecimalJSONParser"],
    "EXCEPTION_HANDLER": "gateway.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- security (gateway/security.py, keys/throttle.py; the deployment checklist: `manage.py check --deploy`) --
# The OpenAPI schema of the management API, served openly at /schema/ like LiteLLM's docs; every endpoint in it
# still needs the master key.
SPECTACULAR_SETTINGS = {
    "TITLE": "Tollgate management API",
    "DESCRIPTION": "LiteLLM-compatible management endpoints. Every endpoint needs the master key as a bearer token.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Request and response components apart: an input's required fields and non-blank strings are its own.
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH /model/update takes the body POST takes (no view here validates partially).
    "COMPONENT_SPLIT_PATCH": False,
    # Bodies are JSON; the parser that reads JSON sent as a form (curl -d) is a courtesy, not a media type.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "gateway.api.schema.describe_errors"],
}
# Served over HTTPS (directly or behind a TLS-terminating proxy): cookies only over HTTPS.
TOLLGATE_HTTPS = env.bool("TOLLGATE_HTTPS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = TOLLGATE_HTTPS and not DEBUG
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (only there: a client could send it too).
if env.bool("TOLLGATE_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Checks that do not apply to a deployment, with the reason in the deployment's docs (e.g. security.W008 when a
# proxy in front redirects HTTP to HTTPS).
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])
# Failed authentications from one address before it gets 429 until the window ends (0: never throttle).
TOLLGATE_AUTH_FAILURE_LIMIT = env.int("TOLLGATE_AUTH_FAILURE_LIMIT", default=20)
TOLLGATE_AUTH_FAILURE_WINDOW = env.float("TOLLGATE_AUTH_FAILURE_WINDOW", default=60.0)
# Take the client address from the last X-Forwarded-For entry (only behind a proxy that appends it).
TOLLGATE_TRUST_X_FORWARDED_FOR = env.bool("TOLLGATE_TRUST_X_FORWARDED_FOR", default=False)
# --- end security -------------------------------------------------------------------------------------------

# --- people and access (gateway/roles.py, gateway/login_protection.py, gateway/sso.py; README "People and access")
# Django's own user model: admin logins (keys.TeamAdministrator links one to the teams it administers).
AUTH_USER_MODEL = "auth.User"
# Wrong admin passwords in a row, per username and per client address, before either is locked (0: never locks).
TOLLGATE_LOGIN_FAILURE_LIMIT = env.int("TOLLGATE_LOGIN_FAILURE_LIMIT", default=10)
TOLLGATE_LOGIN_LOCKOUT_MINUTES = env.int("TOLLGATE_LOGIN_LOCKOUT_MINUTES", default=15)
# django-axes counts the failures in the database (SQLite or PostgreSQL alike, with or without Redis).
AXES_ENABLED = TOLLGATE_LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = TOLLGATE_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=TOLLGATE_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Every failed login is kept (who, from where, when; the last 1000 per username): the admin's "Access failures".
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_CLIENT_IP_CALLABLE = "gateway.login_protection.client_address"
AXES_LOCKOUT_CALLABLE = "gateway.login_protection.lockout_response"
# Admin sessions end this many seconds after login (8 hours when served over HTTPS, Django's 2 weeks otherwise).
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600 if TOLLGATE_HTTPS else 14 * 24 * 3600)
# Single sign-on with OpenID Connect (mozilla-django-oidc, authorization code with PKCE): on when OIDC_ISSUER is set.
OIDC_ISSUER = env.str("OIDC_ISSUER", default="")
OIDC_RP_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
# The claim (of the id token or userinfo) whose values give a role, and which value gives which role.
OIDC_ROLE_CLAIM = env.str("OIDC_ROLE_CLAIM", default="groups")
OIDC_ROLE_MAP = env.dict(
    "OIDC_ROLE_MAP",
    default={"tollgate-admins": "Admins", "tollgate-finance": "Finance", "tollgate-team-admins": "Team admins"},
)
# The claim whose values name (team_id or alias) the teams a Team admin administers; unset: set in the admin.
OIDC_TEAM_CLAIM = env.str("OIDC_TEAM_CLAIM", default="")
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
LOGIN_REDIRECT_URL = "/admin/"
LOGIN_REDIRECT_URL_FAILURE = "/admin/login/?sso=refused"
# Local (password) admin logins must enrol an authenticator app and give its code; single sign-on logins are not
# asked (their identity provider does the second factor). Without it, two-factor sign-in is each account's choice.
TOLLGATE_REQUIRE_2FA = env.bool("TOLLGATE_REQUIRE_2FA", default=False)
# What an authenticator app names the account by; the admin's device list never shows a device's secret.
OTP_TOTP_ISSUER = "Tollgate"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# false: the admin takes no local password, only single sign-on.
TOLLGATE_LOCAL_LOGIN = env.bool("TOLLGATE_LOCAL_LOGIN", default=True)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    *(["django.contrib.auth.backends.ModelBackend"] if TOLLGATE_LOCAL_LOGIN else []),
    *(["gateway.sso.RoleMappingBackend"] if OIDC_ISSUER else []),
]
# --- end people and access ----------------------------------------------------------------------------------

# Every endpoint refuses bodies above this many bytes (413, gateway/body_limit.py); a 100k-token prompt is ~400 KB.
TOLLGATE_MAX_REQUEST_BYTES = env.int("TOLLGATE_MAX_REQUEST_BYTES", default=8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = TOLLGATE_MAX_REQUEST_BYTES
# Refuse calls to deployments no price can be found for, instead of logging them at cost 0.
BLOCK_UNPRICED_MODELS = env.bool("BLOCK_UNPRICED_MODELS", default=False)
# Charges the database could not take (it went away mid-call) wait here, on local disk, until it answers again.
TOLLGATE_SPOOL_DIR = Path(env.str("TOLLGATE_SPOOL_DIR", default=str(VAR_DIR / "spool")))
# A spend log keeps at most this many bytes of a call's metadata (JSON); the rest is cut, saying so (spend.log_rows).
TOLLGATE_SPEND_LOG_METADATA_BYTES = env.int("TOLLGATE_SPEND_LOG_METADATA_BYTES", default=2048)
# Serve /debug/asyncio-tasks (to the master key) without DEBUG: the leak tests read it from live servers.
TOLLGATE_DEBUG_ENDPOINTS = env.bool("TOLLGATE_DEBUG_ENDPOINTS", default=False)
# How often each server process looks for changed deployments, keys and prices.
TOLLGATE_SYNC_INTERVAL = env.float("TOLLGATE_SYNC_INTERVAL", default=0.5)
# Redis keys of the shared budget and rate counters start with this.
TOLLGATE_LIMITS_PREFIX = env.str("TOLLGATE_LIMITS_PREFIX", default="tollgate:limits:")
# A reserved budget and parallel slot lapse after this long even if their process still holds them (a backstop).
TOLLGATE_RESERVATION_SECONDS = env.float("TOLLGATE_RESERVATION_SECONDS", default=900.0)
# A process renews the lease on its calls in flight every sync tick; killed, its leases lapse after this long.
TOLLGATE_LEASE_SECONDS = env.float("TOLLGATE_LEASE_SECONDS", default=5.0)

COST_MAP_URL = env.str(
    "COST_MAP_URL",
    default="https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json",
)
COST_MAP_MAX_LOSS_SHARE = env.float("COST_MAP_MAX_LOSS_SHARE", default=0.1)
COST_MAP_REFRESH_SECONDS = env.int("COST_MAP_REFRESH_SECONDS", default=6 * 3600)

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
# A customer (a call's `user`) with no budget of its own is held to this budget's limits on its own spend (LiteLLM's
# litellm_settings.max_end_user_budget_id: max_budget, rpm/tpm, duration), or else to this max_budget in USD
# (max_end_user_budget). A config's litellm_settings set them when the environment does not.
TOLLGATE_MAX_END_USER_BUDGET_ID = env.str("TOLLGATE_MAX_END_USER_BUDGET_ID", default="")
TOLLGATE_MAX_END_USER_BUDGET = env.str("TOLLGATE_MAX_END_USER_BUDGET", default="")
# A key generated without `duration` expires after this long ("1h", "30d", ...); "never" (the default) is LiteLLM's.
KEY_DEFAULT_DURATION = env.str("KEY_DEFAULT_DURATION", default="never")
# A budget's soft limit crossed, or its max_budget reached, is announced once per holder and budget period: POSTed
# here as JSON with a Slack-compatible "text" (unset: no webhook), and mailed to these addresses (comma-separated).
TOLLGATE_ALERT_WEBHOOK_URL = env.str("TOLLGATE_ALERT_WEBHOOK_URL", default="")
TOLLGATE_ALERT_EMAILS = env.list("TOLLGATE_ALERT_EMAILS", default=[])
# Alert mail goes through Django's email backend: smtp://user:password@host:587 (smtp+tls://, smtp+ssl://), or
# consolemail:// to print it.
vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="tollgate@localhost")
# /metrics answers without the master key (a scraper on a trusted network); off: the master key (Bearer) only.
TOLLGATE_METRICS_PUBLIC = env.bool("TOLLGATE_METRICS_PUBLIC", default=False)
# Raw spend logs older than this many days are pruned (their daily rollups stay); unset keeps every log.
SPEND_LOG_RETENTION_DAYS = env.int("SPEND_LOG_RETENTION_DAYS", default=0) or None
# How often the periodic tasks roll logs up into daily spend and reset budgets whose period ended.
SPEND_ROLLUP_SECONDS = env.float("SPEND_ROLLUP_SECONDS", default=60.0)
BUDGET_RESET_SECONDS = env.float("BUDGET_RESET_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE = {
    "refresh-cost-map": {"task": "pricing.tasks.refresh_cost_map", "schedule": COST_MAP_REFRESH_SECONDS},
    "rollup-spend": {"task": "spend.tasks.rollup_spend", "schedule": SPEND_ROLLUP_SECONDS},
    "reset-budgets": {"task": "spend.tasks.reset_budgets", "schedule": BUDGET_RESET_SECONDS},
    "prune-spend-logs": {"task": "spend.tasks.prune_spend_logs", "schedule": 3600.0},
    # PostgreSQL: the spend log's day partitions, made a week ahead (spend.partitions); nothing to do on SQLite.
    "create-spend-partitions": {"task": "spend.tasks.create_spend_partitions", "schedule": 3600.0},
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # A line per upstream request (httpx) and per refused call (django.request's 4xx warnings) would cost the
        # proxy more than its own work under load, and a flood of bad keys would flood the log: errors only,
        # unless LOG_LEVEL=DEBUG asks for everything.
        "django.request": {"level": LOG_LEVEL if LOG_LEVEL == "DEBUG" else "ERROR"},
        "httpx": {"level": LOG_LEVEL if LOG_LEVEL == "DEBUG" else "WARNING"},
    },
}
