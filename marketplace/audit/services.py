"""Writing the audit trail. Called by every transition, money movement, grant, import and export."""

from django.contrib.contenttypes.models import ContentType

from marketplace.audit.models import Event


def event_record(
    *,
    verb: str,
    actor=None,
    target=None,
    from_state: str = "",
    to_state: str = "",
    reason: str = "",
    data: dict | None = None,
) -> Event:
    """Write one audit event. `actor` None means the system (a timer or a task)."""
    return Event.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        verb=verb,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=str(target.pk) if target is not None else "",
        from_state=from_state or "",
        to_state=to_state or "",
        reason=reason or "",
        data=data or {},
    )
