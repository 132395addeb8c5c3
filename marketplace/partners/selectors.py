"""Partner reads and the partner half of the staff scope, expressed in SQL, never as id lists.

A grant is an uncorrelated subquery over guardian's direct-foreign-key tables, written on
PostgreSQL as `partner_id = ANY(ARRAY(SELECT content_object_id FROM ...userobjectpermission ...))`
(`in_subquery`): the subquery runs once as an InitPlan and its array is a parameter that an index
scan can use, so a scoped list reads the granted partners' rows through the partner indexes
instead of walking the whole table and probing a hash per row, which is what `IN (subquery)`
plans to. A correlated EXISTS under the OR of several grant kinds would be re-run for every row.
"""

import functools

from django.contrib.auth.models import Permission
from django.db.models import F, Q, Subquery
from django.db.models.lookups import In

from marketplace.partners.models import Partner, PartnerGroupObjectPermission, PartnerUserObjectPermission

SCOPE_CODENAME = "operate_partner"


class InArray(In):
    """`lhs = ANY(ARRAY(subquery))` on PostgreSQL; `lhs IN (subquery)` on other databases (SQLite).

    Same rows as `IN`: the subquery is uncorrelated and yields no NULLs (grant tables' ids). On
    PostgreSQL the array is computed once (an InitPlan) and the comparison is an index condition,
    where `IN (subquery)` becomes a hashed SubPlan that can only filter rows already read.
    """

    lookup_name = "in_array"

    def as_postgresql(self, compiler, connection):
        if self.rhs_is_direct_value():
            raise TypeError("in_subquery() takes a queryset: scope stays in SQL, never an id list")
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        if not rhs_sql.startswith("("):
            rhs_sql = f"({rhs_sql})"
        return f"{lhs_sql} = ANY(ARRAY{rhs_sql})", (*lhs_params, *rhs_params)


def in_subquery(field: str, subquery) -> Q:
    """Rows whose `field` is one of the values `subquery` (a one-column queryset) selects."""
    return Q(InArray(F(field), subquery.order_by()))  # a default ordering would only sort the array


def granted_rows_q(model, *branches: Q) -> Q:
    """Rows of `model` matching any branch, as `pk IN (SELECT pk ... WHERE b1 UNION ALL SELECT pk ... WHERE b2 ...)`.

    For a big table whose grant kinds sit on different columns (bookings: partner or category).
    Each branch is a plain `IN (subquery)` over the grant tables, which PostgreSQL turns into a
    join whose size it estimates from those tables' statistics (one granted partner: that
    partner's rows), so it reads the granted rows through the partner index, collects their ids and
    fetches, counts or sorts only those: the cost follows the user's rows, not the table's. An `OR` of
    the branches (or of `= ANY(ARRAY(...))`) is planned before the grants are known, for ~70% of the
    table, and walks the whole `created_at` index for a deep page. A `pk = X` on the outer query
    reaches every branch (the semi-join is on pk), so single-row checks stay index lookups.
    """
    parts = [model.objects.filter(branch).values("pk").order_by() for branch in branches]
    return Q(pk__in=parts[0].union(*parts[1:], all=True)) if len(parts) > 1 else Q(pk__in=parts[0])


class _ScopeCache(dict):
    """The built querysets on a user object. Never pickled: a pickled queryset runs its query."""

    def __reduce__(self):
        return (_ScopeCache, ())


def scope_selector(selector):
    """Build a `<model>_for_user(user)` queryset once per user object and hand out clones.

    The queryset is SQL whose subqueries read the grants when it runs, so a built one stays right
    for as long as the user object lives (a request, in the admin): only `can_operate` and
    `scope_is_global` are decided in Python, from the user's flags (part of the key) and
    `has_perm`, which Django already caches on the same object. Building a scoped user's queryset
    costs the ORM 0.6-4 ms (bookings' union the most), and one admin page asks for several (the list,
    its count, the sidebar's badges); a clone costs microseconds.
    """

    @functools.wraps(selector)
    def built_once(user):
        if user is None:
            return selector(user)
        cache = user.__dict__.setdefault("_scope_querysets", _ScopeCache())
        key = (selector, user.pk, user.is_authenticated, user.is_active, user.is_staff, user.is_superuser)
        if key not in cache:
            cache[key] = selector(user)
        return cache[key].all()

    return built_once


def scope_is_global(user) -> bool:
    """Superusers and holders of `operate_all_partners` (leads, finance) see every partner."""
    return user.is_superuser or user.has_perm("partners.operate_all_partners")


def can_operate(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def permission_id(app_label: str, codename: str) -> Subquery:
    """The permission's id as a scalar subquery (an InitPlan, run once per query)."""
    return Subquery(Permission.objects.filter(content_type__app_label=app_label, codename=codename).values("pk")[:1])


def granted_ids(user, user_model, group_model, *, app_label: str, codename: str) -> tuple:
    """Two subqueries of the object ids granted to `user`: directly, and through their groups."""
    perm = permission_id(app_label, codename)
    direct = user_model.objects.filter(user=user, permission_id=perm).values("content_object_id")
    via_group = group_model.objects.filter(group__user=user, permission_id=perm).values("content_object_id")
    return direct, via_group


def granted_q(field: str, user, user_model, group_model, *, app_label: str, codename: str) -> Q:
    """Rows whose `field` is an object granted to `user`, directly or through a group."""
    direct, via_group = granted_ids(user, user_model, group_model, app_label=app_label, codename=codename)
    return in_subquery(field, direct) | in_subquery(field, via_group)


def granted_partner_ids(user) -> tuple:
    """The partner ids granted to `user`, as two subqueries: directly, and through their groups."""
    return granted_ids(
        user, PartnerUserObjectPermission, PartnerGroupObjectPermission, app_label="partners", codename=SCOPE_CODENAME
    )


def partner_scope_q(user, partner_field: str = "partner") -> Q:
    """Rows whose partner (at `partner_field`) the user was granted directly or through a group."""
    direct, via_group = granted_partner_ids(user)
    return in_subquery(partner_field, direct) | in_subquery(partner_field, via_group)


@scope_selector
def partner_for_user(user):
    """The partners a staff user may operate on."""
    if not can_operate(user):
        return Partner.objects.none()
    if scope_is_global(user):
        return Partner.objects.all()
    return Partner.objects.filter(partner_scope_q(user, "pk"))


def partner_for_partner(partner: Partner):
    """The partner's own row, as the partner API sees it (a key's scope is its partner)."""
    return Partner.objects.filter(pk=partner.pk)


def partner_payouts_blocked(partner: Partner) -> str | None:
    """Why this partner's payouts are held, or None when they may be paid.

    A suspended partner is paid nothing until reinstated; a risk-flagged one until the flag is
    cleared (both through `partner_status_set` / `partner_risk_flag_set`, audited with a reason).
    Reads the row as given: the payout run passes a partner it has just read or locked.
    """
    if partner.status == Partner.Status.SUSPENDED:
        return "Partner is suspended"
    if partner.risk_flag:
        return "Partner is risk-flagged"
    return None


def partner_payouts_blocked_q(partner_field: str = "partner") -> Q:
    """`partner_payouts_blocked` in SQL: rows whose partner (at `partner_field`) is suspended or flagged."""
    prefix = f"{partner_field}__" if partner_field else ""
    return Q(**{f"{prefix}status": Partner.Status.SUSPENDED}) | Q(**{f"{prefix}risk_flag": True})
