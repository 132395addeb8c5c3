"""django-q2 entry points of the catalog. Thin: each calls one service and returns its result."""

from marketplace.catalog import timers


def listing_timers_run() -> dict[str, int]:
    """Scheduled: expire the listings whose end date has passed (safe to run twice, even at once)."""
    return timers.listing_timers_run()
