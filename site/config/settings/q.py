"""django-q2: the ORM broker by default, Redis broker and cache when REDIS_URL is set."""

from django.core.exceptions import ImproperlyConfigured

from config.env import env

REDIS_URL = env.str("REDIS_URL", default="")

Q_CLUSTER = {
    "name": "marketplace",
    "workers": env.int("Q_WORKERS", default=2),
    # A task running longer than `timeout` is killed; it is re-queued after `retry` seconds.
    "timeout": env.int("Q_TIMEOUT", default=120),
    "retry": env.int("Q_RETRY", default=180),
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=5),
    "poll": env.float("Q_POLL", default=1.0),
    "save_limit": 1000,
    "catch_up": False,
    "label": "Tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # The "orm" key selects the database broker; without it django-q2 expects Redis.
    Q_CLUSTER["orm"] = "default"

if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured(
        f"Q_RETRY ({Q_CLUSTER['retry']}s) must be greater than Q_TIMEOUT ({Q_CLUSTER['timeout']}s): "
        "otherwise django-q2 hands a still-running task to a second worker."
    )
