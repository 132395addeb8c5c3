"""Callbacks referenced by dotted path from the UNFOLD settings."""

from django.conf import settings

_COLOURS = {"production": "danger", "staging": "warning"}


def environment_callback(request):
    """Label the admin with the environment it runs in, so nobody mistakes demo for production."""
    name = settings.ENVIRONMENT_NAME
    return [name.capitalize(), _COLOURS.get(name, "info")]
