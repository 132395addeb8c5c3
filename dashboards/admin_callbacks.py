"""Callbacks referenced by dotted path from the UNFOLD settings."""

from django.conf import settings
from django.urls import reverse

from marketplace.ledger.models import ReconciliationCheck

_COLOURS = {"production": "danger", "staging": "warning"}


def environment_callback(request):
    """Label the admin with the environment it runs in, so nobody mistakes demo for production."""
    name = settings.ENVIRONMENT_NAME
    return [name.capitalize(), _COLOURS.get(name, "info")]


def dashboard_callback(request, context):
    """Add what the admin home must shout about: a failed latest ledger reconciliation check.

    Shown to whoever may read the checks (finance, superusers); one indexed query per page view.
    """
    if request.user.has_perm("ledger.view_reconciliationcheck"):
        latest = ReconciliationCheck.objects.order_by("-ran_at", "-id").first()
        if latest is not None and not latest.balanced:
            context["ledger_alert"] = {
                "check": latest,
                "url": reverse("admin:ledger_reconciliationcheck_change", args=[latest.pk]),
            }
    return context
