"""Staff sessions end when idle: `SESSION_IDLE_SECONDS` without a request signs the person out."""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import logout
from django.utils import timezone

logger = logging.getLogger(__name__)

LAST_ACTIVITY = "_marketplace_last_activity"
# The session row is written at most this often to record activity, not on every request (which
# would add a write to every admin page and to every pinned query count).
RECORD_EVERY_SECONDS = 60


def staff_session_start(sender, request, user, **kwargs):
    """On sign-in (`user_logged_in`), pin a staff session's absolute expiry and start its idle clock.

    Pinned, because recording activity saves the session, and a save would otherwise start the
    cookie's SESSION_COOKIE_AGE again. Sign-in saves the session anyway, so this costs no query.
    """
    if request is None or not user.is_staff:
        return
    request.session.set_expiry(timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE))
    request.session[LAST_ACTIVITY] = int(time.time())


class StaffSessionIdleTimeoutMiddleware:
    """Sign out a staff session that has been idle longer than `SESSION_IDLE_SECONDS`.

    The request then goes on as anonymous, so each door answers as it does for anyone signed out:
    the admin and the CMS redirect to their login page, the API refuses. Place after
    AuthenticationMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_staff:
            now = int(time.time())
            last = request.session.get(LAST_ACTIVITY)
            if last is not None and now - last > settings.SESSION_IDLE_SECONDS:
                logger.info("Staff session of user %s ended after %s s idle.", user.pk, now - last)
                logout(request)  # flushes the session: the old cookie is worth nothing now
            elif last is None:
                # A session signed in before this middleware existed: start its clocks now.
                staff_session_start(None, request, user)
            elif now - last >= RECORD_EVERY_SECONDS:
                request.session[LAST_ACTIVITY] = now
        return self.get_response(request)
