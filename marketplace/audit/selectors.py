from dataclasses import dataclass
from datetime import datetime

from django.contrib.contenttypes.models import ContentType

from marketplace.audit.models import Event, Note


def event_list_for_object(*, obj):
    """The timeline of one object, newest first."""
    return Event.objects.filter(
        target_type=ContentType.objects.get_for_model(obj), target_id=str(obj.pk)
    ).select_related("actor")


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "event" or "note"
    actor: object
    title: str
    detail: str
    data: dict


def timeline_for(*, obj, limit: int = 100) -> list[TimelineEntry]:
    """An object's audit events and internal notes merged, newest first (two indexed queries)."""
    content_type = ContentType.objects.get_for_model(obj)
    events = Event.objects.filter(target_type=content_type, target_id=str(obj.pk)).select_related("actor")[:limit]
    notes = Note.objects.filter(target_type=content_type, target_id=str(obj.pk)).select_related("author")[:limit]
    entries = [
        TimelineEntry(
            at=e.created_at,
            kind="event",
            actor=e.actor,
            title=e.verb + (f": {e.from_state} → {e.to_state}" if e.from_state or e.to_state else ""),
            detail=e.reason,
            data=e.data,
        )
        for e in events
    ] + [
        TimelineEntry(at=n.created_at, kind="note", actor=n.author, title="Note", detail=n.body, data={}) for n in notes
    ]
    return sorted(entries, key=lambda entry: entry.at, reverse=True)[:limit]
