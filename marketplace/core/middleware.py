"""Bad input in an admin request answers 4xx (or the page again with a message), never a 500.

AdminNulQueryMiddleware refuses a query string holding a NUL character with a 400. PostgreSQL cannot store NUL in text and psycopg refuses to send it (`ValueError: A string literal
cannot contain NUL (0x00) characters`), so a filter or search such as `?status__exact=%00` or
`?q=%00` used to fail with a 500 when the changelist ran its query. No value with a NUL is valid
input, so it is refused once here, before any admin (ours, Django's, Wagtail's, django-q2's) builds
a query. Forms are already covered: Django's form fields refuse NUL themselves.
AdminBadInputMiddleware covers bulk actions on ids that are not ids and page numbers that are no
pages, for every admin of the site.
"""

from django.contrib import messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.core.paginator import InvalidPage, PageNotAnInteger
from django.http import HttpResponseBadRequest, HttpResponseNotFound, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse

TEXT = "text/plain; charset=utf-8"


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


class AdminBadInputMiddleware:
    """Answer 4xx, not 500, to two more kinds of bad admin input, for every admin of the site.

    - A bulk action posted with selected rows that are not primary keys (`_selected_action=abc`):
      the admin filtered `pk__in` with them and the database driver refused (ValueError). The
      changelist answers again with a message, and nothing is changed.
    - A page number a paginated admin view cannot show (unfold's global search `/admin/search/`
      with `page=abc`, `page=-1`, `page=999`): 400 for a page that is not a number, 404 for one
      that does not exist.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        try:
            self.prefix = reverse("admin:index")
        except NoReverseMatch:
            self.prefix = None

    def __call__(self, request):
        return self.get_response(request)

    def _in_admin(self, request) -> bool:
        return bool(self.prefix) and request.path.startswith(self.prefix)

    def process_view(self, request, view_func, view_args, view_kwargs):
        model_admin = getattr(view_func, "model_admin", None)
        if request.method != "POST" or model_admin is None or not self._in_admin(request):
            return None
        if "action" not in request.POST or ACTION_CHECKBOX_NAME not in request.POST:
            return None
        pk = model_admin.model._meta.pk
        for value in request.POST.getlist(ACTION_CHECKBOX_NAME):
            try:
                if "\x00" in value:  # no key holds one, and PostgreSQL refuses it in a text key
                    raise ValidationError("NUL")
                pk.to_python(value)
            except ValidationError:
                messages.error(request, "The selected rows are not valid, so the action was not run: nothing changed.")
                return HttpResponseRedirect(request.get_full_path())
        return None

    def process_exception(self, request, exception):
        if not self._in_admin(request) or not isinstance(exception, InvalidPage):
            return None
        if isinstance(exception, PageNotAnInteger):
            return HttpResponseBadRequest("The page number is not a whole number.", content_type=TEXT)
        return HttpResponseNotFound(f"No such page: {exception}.", content_type=TEXT)
