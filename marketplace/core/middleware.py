"""Refuse admin requests whose query string holds a NUL character, with a 400.

PostgreSQL cannot store NUL in text and psycopg refuses to send it (`ValueError: A string literal
cannot contain NUL (0x00) characters`), so a filter or search such as `?status__exact=%00` or
`?q=%00` used to fail with a 500 when the changelist ran its query. No value with a NUL is valid
input, so it is refused once here, before any admin (ours, Django's, Wagtail's, django-q2's) builds
a query. Forms are already covered: Django's form fields refuse NUL themselves.
"""

from django.http import HttpResponseBadRequest
from django.urls import NoReverseMatch, reverse


def has_nul(query) -> bool:
    """Whether any key or value of a QueryDict holds a NUL character."""
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query.lists())


class AdminNulQueryMiddleware:
    """Answer 400 to an admin request with a NUL in a query parameter (a filter, the search, a page)."""

    def __init__(self, get_response):
        self.get_response = get_response
        try:
            self.prefix = reverse("admin:index")
        except NoReverseMatch:  # no admin in this URL configuration
            self.prefix = None

    def __call__(self, request):
        if self.prefix and request.path.startswith(self.prefix) and has_nul(request.GET):
            return HttpResponseBadRequest(
                "A filter or search in the address holds a NUL character (%00), which no field can "
                "hold. Remove it and try again.",
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)
