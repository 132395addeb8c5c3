from django.apps import AppConfig


class TransfersConfig(AppConfig):
    """Bulk data in and out: imports (CSV, XLSX) and scoped, audited exports, inline or as tasks.

    Sits above the domain apps: it reads each app's `resources.py` and writes through one bulk
    path; nothing in the domain imports it.
    """

    name = "marketplace.transfers"
    label = "transfers"
    verbose_name = "Imports and exports"
