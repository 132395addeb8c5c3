"""An export job's rows, rebuilt in the task from what the job stores: the model, the changelist's
query string and the person who asked.

A job stores no query, only parameters (JSON). The task answers them the way the changelist
answers a request: the model's admin (its `get_queryset` reads through the model's
`<model>_for_user` selector, then its list filters and search apply the query string), for the
job's author as they are *now*: a partner taken out of their scope between the click and the run
is out of the file too, and an author who lost the export permission gets no file at all.
"""

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpRequest, QueryDict

from marketplace.core.exceptions import InvalidInput


def export_params(*, query: QueryDict, items=None) -> dict:
    """The JSON an export job keeps: every query-string value (lists, as a changelist reads them)
    and, for an export started from the action menu, the selected primary keys."""
    params = {"query": {key: query.getlist(key) for key in query}}
    if items:
        params["items"] = [str(pk) for pk in items]
    return params


def export_queryset(*, model_label: str, params: dict, user):
    """The rows `user` may export now for the stored changelist parameters.

    Raises InvalidInput when the model has no admin, the author may not export it any more, or the
    stored filters no longer apply (a field removed since).
    """
    try:
        model = apps.get_model(model_label)
    except (LookupError, ValueError) as exc:
        raise InvalidInput(f"No such model: {model_label}.") from exc
    model_admin = admin.site._registry.get(model)
    if model_admin is None or not hasattr(model_admin, "get_export_queryset"):
        raise InvalidInput(f"{model_label} has no export in the admin.")
    query = QueryDict(mutable=True)
    for key, values in (params.get("query") or {}).items():
        query.setlist(str(key), [str(value) for value in values])
    request = HttpRequest()  # what a changelist reads of its request: the query string and the user
    request.method, request.path, request.GET, request.user = "GET", "/", query, user
    if not (user.is_active and user.is_staff and model_admin.has_export_permission(request)):
        raise InvalidInput("Its author may no longer export these rows.")
    try:
        queryset = model_admin.get_export_queryset(request)
    except IncorrectLookupParameters as exc:
        raise InvalidInput("The filters of this export can no longer be applied.") from exc
    items = params.get("items")
    if items:
        queryset = queryset.filter(pk__in=items)
    return queryset
