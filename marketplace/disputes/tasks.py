"""django-q2 entry points of disputes. Thin: each calls one service and returns its result."""

from marketplace.disputes import timers


def dispute_timers_run() -> dict[str, int]:
    """Scheduled: move disputes past their deadlines on, escalate SLA breaches, send reminders."""
    return timers.dispute_timers_run()
