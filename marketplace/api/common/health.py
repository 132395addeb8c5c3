"""`/api/health/`: a cheap, unauthenticated liveness answer for load balancers and monitors.

The body is only `status` and one word per check: no versions, hosts, exception texts or timings.
503 when the database or the default cache is down (the process cannot serve); a stale task cluster
is "degraded" but still 200, so a load balancer keeps the web process.

The task cluster counts as seen when a cluster's stat (django-q2's `Stat`, kept in the broker's
cache: shared with Redis) or a finished task (the ORM's task rows: the every-minute schedules of
`manage.py schedules` finish one each minute) is younger than
MARKETPLACE_HEALTH_TASK_HEARTBEAT_SECONDS. The second source is what works with the ORM broker and
a per-process cache, where the web process never sees the cluster's stats.
"""

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

OK, DOWN, STALE, DEGRADED = "ok", "down", "stale", "degraded"


def _database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any failure means down; the detail goes to the log only
        logger.exception("health: database check failed")
        return DOWN
    return OK


def _cache_check() -> str:
    key = f"health:{secrets.token_hex(8)}"
    value = secrets.token_hex(8)
    try:
        cache.set(key, value, timeout=10)
        seen = cache.get(key)
        cache.delete(key)
    except Exception:
        logger.exception("health: cache check failed")
        return DOWN
    return OK if seen == value else DOWN


def _task_cluster_check() -> str:
    from django_q.models import Task
    from django_q.status import Stat

    since = timezone.now() - timedelta(seconds=settings.MARKETPLACE_HEALTH_TASK_HEARTBEAT_SECONDS)
    try:
        if any(stat.timestamp >= since for stat in Stat.get_all()):
            return OK
    except Exception:  # an unreachable stat cache: the task rows may still tell
        logger.warning("health: task cluster stats unreadable", exc_info=True)
    try:
        last_stopped = Task.objects.order_by("-stopped").values_list("stopped", flat=True).first()
    except Exception:
        logger.exception("health: task cluster check failed")
        return DOWN
    return OK if last_stopped is not None and last_stopped >= since else STALE


@never_cache
@require_safe
def health(request):
    """Answer whether this process can serve: database, cache and task cluster, one word each."""
    checks = {"database": _database_check(), "cache": _cache_check(), "task_cluster": _task_cluster_check()}
    if checks["database"] == DOWN or checks["cache"] == DOWN:
        status, code = DOWN, 503
    elif checks["task_cluster"] != OK:
        status, code = DEGRADED, 200
    else:
        status, code = OK, 200
    return JsonResponse({"status": status, "checks": checks}, status=code)
