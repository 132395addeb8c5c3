"""Import of users (CSV, XLSX): clients, workers and providers, optionally made members of a partner."""

from django.contrib.auth.hashers import make_password
from django.db.models.functions import Lower

from marketplace.accounts.models import User
from marketplace.accounts.selectors import user_for_user
from marketplace.partners.models import PartnerMembership
from marketplace.partners.selectors import partner_for_user
from marketplace.transfers.cells import boolean, choice, email, slug, text
from marketplace.transfers.importing import BulkImportResource, Column, Ref, insert_rows, record_imported

PUBLIC_ROLES = {User.Role.CLIENT, User.Role.WORKER, User.Role.SERVICE_PROVIDER}


class UserImportResource(BulkImportResource):
    """New public users, recognised by email (in any case). They get no password: they set one
    through "forgot password". Staff accounts are never imported."""

    model = User
    noun = "user"
    columns = [
        Column("email", email),
        Column("full_name", text(150), required=False, default=""),
        Column("role", choice(User.Role, allowed=PUBLIC_ROLES), required=False, default=User.Role.CLIENT),
        Column("email_verified", boolean, required=False, default=False),
        Column(
            "partner",
            slug(200),
            required=False,
            default=None,
            ref=Ref(partner_for_user, "slug", "partner"),
            help="Optional: the partner the user becomes a member of.",
        ),
        Column("partner_role", choice(PartnerMembership.Role), required=False, default=PartnerMembership.Role.MEMBER),
    ]

    def natural_key(self, values):
        return values["email"]

    def existing(self, keys):
        return dict(User.objects.annotate(folded=Lower("email")).filter(folded__in=keys).values_list("folded", "pk"))

    def existing_in_scope(self, ids, *, user):
        return set(user_for_user(user).filter(pk__in=ids).values_list("pk", flat=True))

    def write(self, rows, *, user, now):
        ids = insert_rows(
            User,
            [
                {
                    "password": make_password(None),
                    "last_login": None,
                    "is_superuser": False,
                    "first_name": "",
                    "last_name": "",
                    "email": v["email"],
                    "is_staff": False,
                    "is_active": True,
                    "date_joined": now,
                    "full_name": v["full_name"],
                    "role": v["role"],
                    "email_verified_at": now if v["email_verified"] else None,
                }
                for v in rows
            ],
        )
        memberships = [
            {"partner_id": v["partner"], "user_id": pk, "role": v["partner_role"], "created_at": now}
            for pk, v in zip(ids, rows, strict=True)
            if v["partner"]
        ]
        insert_rows(PartnerMembership, memberships)
        record_imported(User, ids, actor=user, now=now, verb="user.imported")
        return len(ids)
