"""Partner reads and the partner half of the staff scope, expressed as SQL (EXISTS), never id lists."""

from django.db.models import Exists, OuterRef, Q

from marketplace.partners.models import Partner, PartnerGroupObjectPermission, PartnerUserObjectPermission

SCOPE_CODENAME = "operate_partner"


def scope_is_global(user) -> bool:
    """Superusers and holders of `operate_all_partners` (leads, finance) see every partner."""
    return user.is_superuser or user.has_perm("partners.operate_all_partners")


def can_operate(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def partner_scope_q(user, partner_field: str = "partner") -> Q:
    """Rows whose partner (at `partner_field`) the user was granted directly or through a group."""
    perm = {"permission__codename": SCOPE_CODENAME, "permission__content_type__app_label": "partners"}
    direct = PartnerUserObjectPermission.objects.filter(user=user, content_object=OuterRef(partner_field), **perm)
    via_group = PartnerGroupObjectPermission.objects.filter(
        group__user=user, content_object=OuterRef(partner_field), **perm
    )
    return Q(Exists(direct)) | Q(Exists(via_group))


def partner_for_user(user):
    """The partners a staff user may operate on."""
    if not can_operate(user):
        return Partner.objects.none()
    if scope_is_global(user):
        return Partner.objects.all()
    return Partner.objects.filter(partner_scope_q(user, "pk"))
