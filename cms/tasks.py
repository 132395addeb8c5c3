"""django-q2 entry points of the CMS."""

from io import StringIO

from django.core.management import call_command

from marketplace.core.locks import single_flight


def publish_scheduled() -> str:
    """Scheduled: publish pages and snippets whose go-live time has passed, unpublish expired ones.

    Wagtail's own `publish_scheduled` command does the work; its output is the task result shown in
    the admin. Run twice in a row, the second finds nothing due. Two runs at the same moment could
    both publish the same revision, so one run at a time holds a named lock; the other returns.
    """
    with single_flight("cms.publish_scheduled") as acquired:
        if not acquired:
            return "skipped: another run is publishing"
        out = StringIO()
        call_command("publish_scheduled", stdout=out)
        return out.getvalue()
