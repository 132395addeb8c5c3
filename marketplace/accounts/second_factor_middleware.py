"""The second-factor wall: a person who needs one and has not passed it reaches nothing else.

After OTPMiddleware (which reads the verified device from the session). For a signed-in person the
rule names (`second_factor_required`) whose session is not verified, every address except a few
open ones redirects: to enrolment if they have no confirmed authenticator, else to verification,
with `next` bringing them back afterwards. Fail-closed: the admin, the CMS, documents and any door
added later are behind it without being listed. Open: the two second-factor pages, signing in and
out (admin and CMS) and static files.
"""

from functools import cache
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse

from marketplace.accounts.second_factor import authenticator_get, second_factor_required

OPEN_URL_NAMES = (
    "second_factor:enrol",
    "second_factor:verify",
    "admin:login",
    "admin:logout",
    "wagtailadmin_login",
    "wagtailadmin_logout",
)


@cache
def _open_paths() -> frozenset[str]:
    paths = set()
    for name in OPEN_URL_NAMES:
        try:
            paths.add(reverse(name))
        except NoReverseMatch:  # a door not mounted in this URLconf
            continue
    return frozenset(paths)


def is_open_path(path: str) -> bool:
    return path in _open_paths() or (bool(settings.STATIC_URL) and path.startswith(settings.STATIC_URL))


def second_factor_step_url(user, next_url: str) -> str:
    """Where this person goes next: enrolment without an authenticator, verification with one."""
    name = "second_factor:verify" if authenticator_get(user) is not None else "second_factor:enrol"
    return f"{reverse(name)}?{urlencode({'next': next_url})}"


class SecondFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not user.is_verified()
            and not is_open_path(request.path)
            and second_factor_required(user)
        ):
            next_url = request.get_full_path() if request.method == "GET" else reverse("admin:index")
            return HttpResponseRedirect(second_factor_step_url(user, next_url))
        return self.get_response(request)
