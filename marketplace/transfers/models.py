import posixpath

from django.conf import settings
from django.db import models
from django.utils import timezone

from marketplace.core.storage import private_storage, private_token


def transfer_file_name(job: "TransferJob", filename: str) -> str:
    """`transfers/YYYY/MM/<kind>-<random token>.<ext>`: the name tells nothing and cannot be guessed."""
    extension = posixpath.splitext(filename)[1].lower()
    return f"transfers/{timezone.now():%Y/%m}/{job.kind}-{private_token()}{extension}"


class TransferJob(models.Model):
    """An import or export too large for a request, run by django-q2, its progress visible in the admin.

    An import goes queued -> validating -> ready (every row valid; waits for the person to confirm)
    | invalid (row errors, nothing written) -> importing -> done | failed. An export goes
    queued -> exporting -> done | failed. `processed` against `total` is the progress bar.
    """

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        EXPORT = "export", "Export"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        VALIDATING = "validating", "Validating"
        INVALID = "invalid", "Rows with errors"
        READY = "ready", "Ready to import"
        IMPORTING = "importing", "Importing"
        EXPORTING = "exporting", "Exporting"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    resource = models.CharField(max_length=64, help_text="The model label, e.g. catalog.listing.")
    resource_path = models.CharField(max_length=255, help_text="The import or export resource class.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # In the private storage, outside MEDIA_ROOT: served only by the admin's download view.
    file = models.FileField(upload_to=transfer_file_name, storage=private_storage, blank=True)
    file_name = models.CharField(max_length=255, blank=True, default="")
    file_format = models.CharField(max_length=8, blank=True, default="")
    # An export's rows, as parameters the task answers through the model's admin and scope
    # selector (transfers/changelist.py): {"query": {name: [values]}, "items": [pks]}. Never a query.
    params = models.JSONField(default=dict, blank=True, editable=False)
    filters = models.CharField(max_length=1000, blank=True, default="", help_text="The changelist's query string.")
    total = models.PositiveIntegerField(null=True, blank=True)
    processed = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="The first row errors: row, column, message.")
    message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "import or export"
        verbose_name_plural = "imports and exports"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["actor", "-created_at"], name="transferjob_actor_idx")]
        permissions = [
            ("import_data", "Can import files (with the add permission of the model imported)"),
            ("export_data", "Can export the rows in their scope"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["import", "export"]), name="transferjob_kind_valid"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.resource} #{self.pk}"

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, round(100 * self.processed / self.total))

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.INVALID, self.Status.DONE, self.Status.FAILED)
