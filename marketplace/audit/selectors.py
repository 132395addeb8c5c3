from django.contrib.contenttypes.models import ContentType

from marketplace.audit.models import Event


def event_list_for_object(*, obj):
    """The timeline of one object, newest first."""
    return Event.objects.filter(
        target_type=ContentType.objects.get_for_model(obj), target_id=str(obj.pk)
    ).select_related("actor")
