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


def note_add(*, target, author, body: str):
    """Add an internal note to an object's timeline. The caller has checked the author may see it."""
    from marketplace.audit.models import Note
    from marketplace.core.exceptions import InvalidInput

    body = (body or "").strip()
    if not body:
        raise InvalidInput("A note cannot be empty.")
    if len(body) > 5000:
        raise InvalidInput("A note is at most 5,000 characters.")
    return Note.objects.create(
        author=author, target_type=ContentType.objects.get_for_model(target), target_id=str(target.pk), body=body
    )
