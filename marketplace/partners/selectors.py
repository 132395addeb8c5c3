"""Partner reads and the partner half of the staff scope, expressed in SQL, never as id lists.

A grant becomes an uncorrelated subquery over guardian's direct-foreign-key tables
(`partner_id IN (SELECT content_object_id FROM ...userobjectpermission JOIN ... WHERE user_id = ...)`):
PostgreSQL runs it once and probes a hash per row, where a correlated EXISTS under the OR of
several grant kinds would be re-run for every row scanned.
"""

from django.contrib.auth.models import Permission
from django.db.models import Q, Subquery

from marketplace.partners.models import Partner, PartnerGroupObjectPermission, PartnerUserObjectPermission

SCOPE_CODENAME = "operate_partner"


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


def partner_scope_q(user, partner_field: str = "partner") -> Q:
    """Rows whose partner (at `partner_field`) the user was granted directly or through a group."""
    direct, via_group = granted_ids(
        user, PartnerUserObjectPermission, PartnerGroupObjectPermission, app_label="partners", codename=SCOPE_CODENAME
    )
    return Q(**{f"{partner_field}__in": direct}) | Q(**{f"{partner_field}__in": via_group})


def partner_for_user(user):
    """The partners a staff user may operate on."""
    if not can_operate(user):
        return Partner.objects.none()
    if scope_is_global(user):
        return Partner.objects.all()
    return Partner.objects.filter(partner_scope_q(user, "pk"))
