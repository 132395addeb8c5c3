"""One JSON error shape for the API (drf-standardized-errors' shape, so adopting that library
later changes nothing for clients):

    {"type": "client_error" | "server_error",
     "errors": [{"code": "...", "detail": "...", "attr": "<param>" | null}]}

The domain's errors (`marketplace.core.exceptions`) map here: NotPermitted 403, InvalidInput 400,
TransitionNotAllowed 409.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed

_DOMAIN = {
    NotPermitted: (status.HTTP_403_FORBIDDEN, "permission_denied"),
    InvalidInput: (status.HTTP_400_BAD_REQUEST, "invalid"),
    TransitionNotAllowed: (status.HTTP_409_CONFLICT, "transition_not_allowed"),
}


def _flatten(detail, attr=None):
    """DRF's nested detail (dict / list / ErrorDetail) -> [{"code", "detail", "attr"}]."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = None if key == "non_field_errors" else (key if attr is None else f"{attr}.{key}")
            out.extend(_flatten(value, name if key != "non_field_errors" else attr))
        return out
    if isinstance(detail, list):
        out = []
        for value in detail:
            out.extend(_flatten(value, attr))
        return out
    return [{"code": getattr(detail, "code", "error"), "detail": str(detail), "attr": attr}]


def error_body(status_code: int, errors: list[dict]) -> dict:
    return {"type": "server_error" if status_code >= 500 else "client_error", "errors": errors}


def api_exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER for the API views: every refusal in the one shape."""
    for cls, (code_status, code) in _DOMAIN.items():
        if isinstance(exc, cls):
            set_rollback()
            return Response(
                error_body(code_status, [{"code": code, "detail": exc.message, "attr": None}]), status=code_status
            )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # unexpected: Django's 500 handling (logged), not a body that leaks internals
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()
    return Response(error_body(exc.status_code, _flatten(exc.detail)), status=exc.status_code, headers=headers)
