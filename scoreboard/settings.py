"""Settings for the live scoreboard, read from the environment.

With no environment at all this is the embedded setup: SQLite and the in-memory channel
layer in one process. `REDIS_URL` and `DATABASE_URL` switch to the scale-out setup.
See README.md, "Configuration", for every variable.
"""

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# `make run` writes a git-ignored .env (DEBUG on, a generated secret key), so that every
# manage.py command in any terminal runs like the server. Variables already set win.
# DJANGO_ENV_FILE names another file; empty reads none (the tests and deploy/ set it so).
ENV_FILE = os.environ.get("DJANGO_ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    environ.Env.read_env(ENV_FILE)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}.")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


origin_pattern = re.compile(
    r"https?://(\*\.)?([a-z0-9-]+\.)*[a-z0-9-]+(:\d{1,5})?|https?://\[[0-9a-f:.]+\](:\d{1,5})?"
)


def env_origins(name: str) -> list[str]:
    """Web origins (scheme://host[:port]; a host may start with `*.`), comma-separated. Checked,
    because they go into a response header."""
    origins = env_list(name, "")
    for origin in origins:
        if not origin_pattern.fullmatch(origin.lower()):
            raise ImproperlyConfigured(f"{name} lists origins like https://example.com; got {origin!r}.")
    return origins


def env_number(name: str, default: float, kind: type = int) -> float:
    """An int (or, with kind=float, any number) from the environment, or a clear error."""
    value = os.environ.get(name, "")
    try:
        return kind(value) if value else default
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {what}, got {value!r}.") from None


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. It is required when DJANGO_DEBUG is off; "
            'generate one with: python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# Production behind a TLS-terminating proxy (deploy/nginx): the proxy must set
# X-Forwarded-Proto itself (never pass the client's), or a client could claim HTTPS.
HTTPS = env_bool("DJANGO_HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Load balancers probe over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_number("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)

INSTALLED_APPS = [
    # First, so that `manage.py runserver` serves HTTP and WebSockets through Daphne.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic",
    "django.contrib.staticfiles",
    "channels",
    "import_export",
    "axes",
    "live",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    # Before the session's: a request's access events go out once its session is saved.
    "live.delivery.access.AccessEventsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "scoreboard.csp.ContentSecurityPolicyMiddleware",
    "scoreboard.busy_database.BusyDatabaseMiddleware",
    # Last, as django-axes documents: turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes) on both login pages, /admin/login/ and /accounts/login/:
# after DJANGO_LOGIN_FAILURE_LIMIT failed logins for one username from one client address,
# that pair is refused (429, templates/registration/locked_out.html, even with the right
# password) for DJANGO_LOGIN_COOLOFF_MINUTES after its last failure. Only the pair is locked,
# so nobody can lock staff out from elsewhere; nginx's limit_req caps tries per address
# across usernames (deploy/nginx). Unlock early: `manage.py axes_reset_username NAME`,
# `manage.py axes_reset` (everyone), or delete the row under Axes › Access attempts in the admin.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_number("DJANGO_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_number("DJANGO_LOGIN_COOLOFF_MINUTES", 15, float))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The address live/delivery/guards.py resolved (X-Forwarded-For believed from trusted proxies only).
AXES_CLIENT_IP_CALLABLE = "live.delivery.guards.request_client_address"

# No inline script or style anywhere (the admin's templates have none either); the page's
# WebSocket is same-origin, which 'self' covers in connect-src. Django 6.0 reads the same
# setting in its own django.middleware.csp.ContentSecurityPolicyMiddleware.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

# Origins whose pages may frame /boards/<slug>/embed/ (and no other page), e.g.
# "https://club.example,https://*.league.example". Empty: no one may.
LIVE_EMBED_ORIGINS = env_origins("LIVE_EMBED_ORIGINS")

ROOT_URLCONF = "scoreboard.urls"

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

ASGI_APPLICATION = "scoreboard.asgi.application"

# The longest a write waits for another writer's lock (seconds): SQLite's busy timeout,
# PostgreSQL's lock_timeout. Past it the save is refused with the 503 "not saved, try again"
# page (scoreboard/busy_database.py) and nothing of it is written.
DATABASE_LOCK_WAIT = env_number("DATABASE_LOCK_WAIT", 20, float)
SQLITE_OPTIONS = {
    # Writers take the lock up front instead of failing on upgrade from a read lock.
    "transaction_mode": "IMMEDIATE",
    "timeout": DATABASE_LOCK_WAIT,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASES = {
    "default": dj_database_url.config(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "options", f"-c lock_timeout={int(DATABASE_LOCK_WAIT * 1000)}"
    )

REDIS_URL = os.environ.get("REDIS_URL", "")
CHANNEL_LAYER = os.environ.get("CHANNEL_LAYER", "pubsub")
# Daphne closes a WebSocket after --websocket_timeout (86400 s by default); a group
# membership must outlive it. The relay also re-adds its groups every LIVE_GROUP_REFRESH.
LIVE_GROUP_EXPIRY = env_number("LIVE_GROUP_EXPIRY", 86400)
LIVE_GROUP_REFRESH = env_number("LIVE_GROUP_REFRESH", min(3600, max(1, LIVE_GROUP_EXPIRY // 3)))
# A spectator whose unsent frames pass this many bytes (after the kernel's socket buffer is
# full) is closed with 1013 and resyncs on reconnect, so it cannot grow the server's memory.
LIVE_SEND_BUFFER_LIMIT = env_number("LIVE_SEND_BUFFER_LIMIT", 1024 * 1024)
# The longest a save waits for the channel layer (seconds); what it could not send, the
# relays read from the database (docs/RELIABILITY.md, "Every writer heard").
LIVE_PUBLISH_TIMEOUT = env_number("LIVE_PUBLISH_TIMEOUT", 0.25, float)
# How often each server process compares its boards' versions with the database.
LIVE_FRESHNESS_EVERY = env_number("LIVE_FRESHNESS_EVERY", 0.5, float)
# Write each update framed once, straight to Daphne's sockets (live/delivery/daphne.py);
# 0 sends through ASGI instead, as under another server (for comparison in bench/).
LIVE_DIRECT_SEND = env_bool("LIVE_DIRECT_SEND", True)
# /metrics (Prometheus) answers these client addresses, and any request with the token
# (`Authorization: Bearer <token>`); everyone else gets 404.
LIVE_METRICS_ALLOWED_IPS = env_list("LIVE_METRICS_ALLOWED_IPS", "127.0.0.1,::1")
LIVE_METRICS_TOKEN = os.environ.get("LIVE_METRICS_TOKEN", "")
# How long a relay holds an update that overtook its predecessor before reading the gap.
LIVE_REORDER_HOLD = env_number("LIVE_REORDER_HOLD", 0.1, float)
# Seconds between two counts of who is watching (live/delivery/presence.py); docs/PROTOCOL.md
# promises at most one `watching` frame per board and second, and its bounds assume 1 s.
LIVE_PRESENCE_EVERY = 1.0

# Hostile clients (docs/RELIABILITY.md, "Hostile clients"; live/delivery/guards.py).
# WebSocket Origins allowed besides the site's own (scheme://host[:port], "*." subdomains).
LIVE_WEBSOCKET_ORIGINS = env_list("LIVE_WEBSOCKET_ORIGINS", ",".join(CSRF_TRUSTED_ORIGINS))
# Connections one client address may hold open in one server process (0: no limit): TCP
# connections of a direct peer, WebSockets of a client behind a trusted proxy. Spectators
# behind one NAT share an address: raise it for a venue's Wi-Fi.
LIVE_CONNECTIONS_PER_ADDRESS = env_number("LIVE_CONNECTIONS_PER_ADDRESS", 50)
# Seconds a connection has to finish a request's headers (from connecting, or from its
# previous response) before it is dropped; Twisted alone waits 60 s per idle gap.
LIVE_HEADER_TIMEOUT = env_number("LIVE_HEADER_TIMEOUT", 10, float)
# Largest request body in bytes (413 beyond, before Daphne buffers it); nginx's
# client_max_body_size in deploy/ is the same 1 MiB.
LIVE_MAX_REQUEST_BODY = env_number("LIVE_MAX_REQUEST_BODY", 1024 * 1024)
# Proxies whose X-Forwarded-For names the client (addresses or networks, e.g. 10.0.0.0/8).
# A peer on a Unix socket (nginx in deploy/) is always one; nobody else is by default.
LIVE_TRUSTED_PROXIES = env_list("LIVE_TRUSTED_PROXIES", "")
for _proxy in LIVE_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"LIVE_TRUSTED_PROXIES: {_proxy!r} is not an address or network."
        ) from None


def redis_channel_layer(*, redis_url: str, kind: str, group_expiry: int, prefix: str = "asgi") -> dict:
    """The CHANNEL_LAYERS entry for channels-redis: `kind` is "pubsub" or "core"."""
    hosts = [{"address": redis_url, "socket_connect_timeout": 2}]
    if kind == "pubsub":
        return {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": hosts, "prefix": prefix},
        }
    if kind == "core":
        return {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": hosts,
                "prefix": prefix,
                # One member per process and board receives every update: size the
                # queue for bursts (over capacity, channels-redis drops silently).
                "capacity": 1000,
                "group_expiry": group_expiry,
            },
        }
    raise ImproperlyConfigured(f"CHANNEL_LAYER must be 'pubsub' or 'core', got {kind!r}.")


if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            redis_url=REDIS_URL, kind=CHANNEL_LAYER, group_expiry=LIVE_GROUP_EXPIRY
        )
    }
else:
    # One process only: nothing crosses to other processes (see docs/ARCHITECTURE.md).
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
# Development and tests serve app static files straight from the apps (no collectstatic).
# Production runs collectstatic and serves compressed files with hashed, cacheable names.
STATIC_MANIFEST = env_bool("DJANGO_STATIC_MANIFEST", False)
SERVESTATIC_USE_FINDERS = not STATIC_MANIFEST
if STATIC_MANIFEST:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_REDIRECT_URL = "/"

# LOG_FORMAT=json: one JSON object per line, for a log shipper (journald, Loki, ...).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', got {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "scoreboard.log_format.JsonFormatter"},
    },
    # channels-redis retries every second while Redis is down: see scoreboard/log_filters.py.
    "filters": {"quiet_repeats": {"()": "scoreboard.log_filters.QuietRepeats"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["quiet_repeats"]}
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"live": {"level": os.environ.get("LIVE_LOG_LEVEL", "INFO")}},
}
