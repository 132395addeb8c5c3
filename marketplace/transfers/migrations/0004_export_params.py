"""Export jobs keep their changelist parameters (JSON) instead of a pickled query.

An export still queued or running with a pickled query is failed with a message (its author starts
it again from the changelist): unpickling database content is exactly what this removes. Finished
exports keep their file; the pickles are dropped with the column.
"""

from django.db import migrations, models
from django.utils import timezone

RETRY = "Stopped by an upgrade: exports no longer run stored queries. Start the export again from the list."


def fail_pickled_exports(apps, schema_editor):
    TransferJob = apps.get_model("transfers", "TransferJob")
    TransferJob.objects.filter(kind="export", status__in=["queued", "exporting"], query__isnull=False).update(
        status="failed", finished_at=timezone.now(), message=RETRY
    )


class Migration(migrations.Migration):
    dependencies = [("transfers", "0003_private_files")]

    operations = [
        migrations.AddField(
            model_name="transferjob",
            name="params",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
        migrations.RunPython(fail_pickled_exports, migrations.RunPython.noop),
        migrations.RemoveField(model_name="transferjob", name="query"),
    ]
