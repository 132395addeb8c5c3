"""django-q2 entry points of imports and exports. Thin: each calls one service; safe to run twice."""

from marketplace.transfers import services


def import_job_validate(job_id: int) -> str:
    return services.import_job_validate(job_id=job_id)


def import_job_run(job_id: int) -> str:
    return services.import_job_run(job_id=job_id)


def export_job_run(job_id: int) -> str:
    return services.export_job_run(job_id=job_id)


def transfer_files_prune() -> dict[str, int]:
    """Scheduled daily: old job files and unconfirmed uploads."""
    return services.transfer_files_prune()
