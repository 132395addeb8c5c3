"""Throttled sign-in for the staff doors: django-axes hooks and rate-limited password-reset emails.

The policy and its numbers are in config/settings/signin.py.
"""

import hashlib
import logging
import time

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib import admin
from django.core.cache import caches
from django.db.models import Sum
from django.template.response import TemplateResponse
from wagtail.admin.forms.auth import PasswordResetForm

logger = logging.getLogger(__name__)


def client_ip(request) -> str | None:
    """Return the client's IP: REMOTE_ADDR, or the trusted proxy header when one is configured.

    With SIGNIN_CLIENT_IP_HEADER set (e.g. HTTP_X_FORWARDED_FOR), the address is the entry that
    the outermost of SIGNIN_TRUSTED_PROXY_COUNT proxies appended: entries to its left were sent by
    the client and can be anything. Without the setting, a forwarded header is ignored.
    """
    header = settings.SIGNIN_CLIENT_IP_HEADER
    if header:
        hops = [part.strip() for part in request.META.get(header, "").split(",") if part.strip()]
        count = max(settings.SIGNIN_TRUSTED_PROXY_COUNT, 1)
        if len(hops) >= count:
            return hops[-count]
    return request.META.get("REMOTE_ADDR")


def signin_username(request, credentials: dict | None) -> str | None:
    """Return the typed sign-in address as axes keys it: trimmed and lower-cased (emails are stored
    lower-cased), so `Ann@X` and `ann@x ` share one count."""
    source = credentials if credentials else getattr(request, "POST", {})
    username = source.get(settings.AXES_USERNAME_FORM_FIELD)
    return username.strip().lower() if isinstance(username, str) else None


class SigninAttemptHandler(AxesDatabaseHandler):
    """Axes's database handler with two limits: one per (account, IP), a higher one per IP.

    Axes compares the largest count of its lockout parameters with one AXES_FAILURE_LIMIT. Here
    the IP-wide count (the second of AXES_LOCKOUT_PARAMETERS) locks only at SIGNIN_IP_FAILURE_LIMIT:
    reaching it reports the pair limit, so axes locks; below it, only the pair's count is reported.
    """

    def get_failures(self, request, credentials: dict | None = None) -> int:
        pair, address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        if address >= settings.SIGNIN_IP_FAILURE_LIMIT:
            return max(pair, settings.AXES_FAILURE_LIMIT)
        return pair


def lockout_response(request, original_response=None, credentials=None):
    """Answer a locked-out sign-in with one styled page (HTTP 429), the same for every account."""
    login_url = "/cms/login/" if request.path.startswith("/cms/") else "/admin/login/"
    context = {
        **admin.site.each_context(request),
        "title": "Too many sign-in attempts",
        "cooloff_minutes": settings.SIGNIN_COOLOFF_MINUTES,
        "login_url": login_url,
    }
    return TemplateResponse(
        request, "accounts/signin_locked.html", context, status=settings.AXES_HTTP_RESPONSE_CODE
    ).render()


# --- Password-reset emails ------------------------------------------------------------


def _window_count(key: str, now: float) -> int:
    """Count one more request under `key` in its fixed window and return the count so far.

    The window's end travels with the count, so the key expires with its window on every backend
    (Django's generic `incr` would reset the timeout). Two requests at the same instant may both
    read the same count: the limit can be passed by the number of concurrent requests, no more.
    """
    cache = caches["signin"]
    count, ends = cache.get(key) or (0, now + settings.SIGNIN_RESET_WINDOW_SECONDS)
    if ends <= now:
        count, ends = 0, now + settings.SIGNIN_RESET_WINDOW_SECONDS
    count += 1
    cache.set(key, (count, ends), timeout=max(int(ends - now), 1))
    return count


def password_reset_allowed(*, email: str, ip: str | None) -> bool:
    """Record a password-reset request and say whether it may send an email.

    Every request counts, sent or refused, known address or not; the address is hashed so the
    cache holds no email addresses.
    """
    now = time.time()
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    per_address = _window_count(f"reset:address:{digest}", now)
    per_ip = _window_count(f"reset:ip:{ip or 'unknown'}", now)
    return per_address <= settings.SIGNIN_RESET_PER_ADDRESS and per_ip <= settings.SIGNIN_RESET_PER_IP


class ThrottledPasswordResetForm(PasswordResetForm):
    """Wagtail's password-reset form that sends nothing past the per-address and per-IP limits.

    The view answers the same either way (a redirect to the "check your email" page), so neither
    the limit nor the address's existence shows.
    """

    def save(self, *args, request=None, **kwargs):
        email = self.cleaned_data["email"]
        ip = client_ip(request) if request is not None else None
        if not password_reset_allowed(email=email, ip=ip):
            logger.warning("Password-reset email refused: limit reached (IP %s).", ip)
            return None
        return super().save(*args, request=request, **kwargs)
