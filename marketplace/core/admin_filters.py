"""Changelist filters and search for big tables: nothing here lists a column's distinct values or
scans a table to draw a filter.

- `DayRangeFilter`: unfold's date range on a datetime column, as whole days.
- `ScopedAutocompleteFilter`: unfold's autocomplete filter, its chosen value read through the scope.
- `search_by_shape`: a changelist search that picks its lookups by what was typed (a number, an
  email address, or text), so each search is one indexed predicate rather than an OR of them all.
"""

import re
from datetime import datetime, time, timedelta

from django.db.models import BooleanField, Q, Value
from django.utils import timezone
from unfold.contrib.filters.admin import AutocompleteSelectFilter, RangeDateFilter
from unfold.contrib.filters.forms import AutocompleteDropdownForm
from unfold.utils import parse_date_str


class DayRangeFilter(RangeDateFilter):
    """From/to dates on a datetime column, both days included, in the current time zone.

    `created_at_from=2026-01-01&created_at_to=2026-01-31` filters `created_at >= 2026-01-01 00:00`
    and `< 2026-02-01 00:00`: a range on the column's index, no date cast per row. (unfold's
    `RangeDateTimeFilter` needs a time as well as a date on each side, or it ignores the side;
    `RangeDateFilter` alone would end the range at midnight of the last day.) A date that does not
    parse is ignored, like unfold's own filters do.
    """

    def _day_start(self, key: str, days: int = 0):
        value = self.used_parameters.get(key)
        day = parse_date_str(value) if isinstance(value, str) else None
        if day is None:
            return None
        return timezone.make_aware(datetime.combine(day + timedelta(days=days), time.min))

    def queryset(self, request, queryset):
        bounds = {}
        if start := self._day_start(f"{self.parameter_name}_from"):
            bounds[f"{self.parameter_name}__gte"] = start
        if end := self._day_start(f"{self.parameter_name}_to", days=1):
            bounds[f"{self.parameter_name}__lt"] = end
        return queryset.filter(**bounds)


class _ScopedAutocompleteForm(AutocompleteDropdownForm):
    def __init__(self, request, name, label, choices, field, model_admin, *args, **kwargs):
        super().__init__(request, name, label, choices, field, model_admin, *args, **kwargs)
        # unfold reads the chosen value's label from the whole table; read it through the related
        # admin's (scoped) queryset, so a crafted `?partner__id__exact=<other partner>` shows no name.
        # With no value chosen there is no label to read: an empty queryset, so a page does not build
        # the related admin's scope (people's is a union of seven selectors, ~20 ms of ORM) for nothing.
        if request.GET.get(name, "") == "":
            self.fields[name].queryset = self.fields[name].queryset.none()
            return
        related_admin = model_admin.admin_site.get_model_admin(field.remote_field.model)
        self.fields[name].queryset = related_admin.get_queryset(request)


class ScopedAutocompleteFilter(AutocompleteSelectFilter):
    """A foreign key filter whose choices come from the related admin's autocomplete view.

    Nothing is listed up front (no `SELECT DISTINCT` over the big table, unlike
    `RelatedOnlyFieldListFilter`); the widget asks `/admin/autocomplete/`, which searches the
    related admin's `search_fields` through its scoped `get_queryset`. The related model's admin
    must define `search_fields`. The deep link is `?<field>__id__exact=<pk>`.
    """

    form_class = _ScopedAutocompleteForm


_NUMBER = re.compile(r"#?(\d{1,18})")


def search_by_shape(queryset, term: str, *, number=(), email=(), text=()):
    """Filter `queryset` by a changelist search term; returns `(queryset, may_have_duplicates)`.

    The term is taken whole (a title may hold spaces). A whole number (`123` or `#123`) is tried
    against the `number` lookups (ids, e.g. `pk`); a term with an `@`, lower-cased, against the
    `email` lookups (e.g. `client__email`: an exact address, which the unique index answers);
    anything else against the `text` lookups (e.g. `title__istartswith`). Each lookup is written
    whole, so a big table's admin can keep to indexed ones. Several lookups of one kind are ORed;
    a kind with no lookups finds nothing.
    """
    term = (term or "").strip().strip("\"'")
    if not term:
        return queryset, False
    if match := _NUMBER.fullmatch(term):
        lookups, value = list(number), int(match[1])
    elif "@" in term:
        lookups, value = list(email), term.lower()  # addresses are stored lower-cased (UserManager)
    else:
        lookups, value = list(text), term
    if not lookups:
        # Not `.none()`: the changelist's paginator compiles the query for the planner's estimate,
        # and an empty `.none()` query cannot be compiled (EmptyResultSet). `WHERE false` can.
        return queryset.filter(Value(False, output_field=BooleanField())), False
    return queryset.filter(Q.create([(lookup, value) for lookup in lookups], connector=Q.OR)), False
