"""'My work': what waits for the signed-in person, oldest first, with its age and SLA."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from marketplace.catalog.selectors import listing_moderation_queue
from marketplace.disputes.selectors import dispute_assigned_to
from marketplace.payouts.selectors import payout_awaiting_approval_for

LIMIT = 50  # per queue; the queue's own changelist has the rest


@dataclass
class Row:
    obj: object
    url: str
    waiting_since: datetime | None
    due: datetime | None = None

    @property
    def age(self):
        return timezone.now() - self.waiting_since if self.waiting_since else None

    @property
    def overdue(self) -> bool:
        return bool(self.due and self.due < timezone.now())


def _url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def my_work(request):
    """Three queues for the person signed in, each one query over their scope."""
    user = request.user
    sections = []
    if user.has_perm("disputes.view_dispute"):
        disputes = dispute_assigned_to(user).select_related("booking", "partner")[:LIMIT]
        sections.append(("Disputes assigned to me", [Row(d, _url(d), d.created_at, d.sla_due_at) for d in disputes]))
    if user.has_perm("payouts.approve_payout"):
        payouts = payout_awaiting_approval_for(user).select_related("partner", "requested_by")[:LIMIT]
        sections.append(("Payouts waiting for my approval", [Row(p, _url(p), p.updated_at) for p in payouts]))
    if user.has_perm("catalog.moderate_listing"):
        listings = listing_moderation_queue(user).select_related("partner", "category")[:LIMIT]
        sections.append(
            ("Listings waiting for review", [Row(x, _url(x), x.pending_changes_at or x.submitted_at) for x in listings])
        )
    context = {**admin.site.each_context(request), "title": "My work", "sections": sections, "limit": LIMIT}
    return TemplateResponse(request, "admin/dashboards/my_work.html", context)
