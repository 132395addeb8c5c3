"""django-q2 entry points of the CMS."""

from io import StringIO

from django.core.management import call_command


def publish_scheduled() -> str:
    """Scheduled: publish pages and snippets whose go-live time has passed, unpublish expired ones.

    Wagtail's own `publish_scheduled` command does the work (safe to run twice); its output is the
    task result shown in the admin.
    """
    out = StringIO()
    call_command("publish_scheduled", stdout=out)
    return out.getvalue()
