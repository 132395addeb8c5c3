"""Registration, email verification and staff groups."""

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.accounts.access import group_permissions_sync
from marketplace.accounts.models import User
from marketplace.audit.services import event_record
from marketplace.core.exceptions import InvalidInput
from marketplace.notifications.services import notify

VERIFY_SALT = "accounts.email-verify"
VERIFY_MAX_AGE = 60 * 60 * 24 * 3  # three days


class StaffGroup:
    OPERATIONS_AGENT = "Operations agent"
    OPERATIONS_LEAD = "Operations lead"
    FINANCE = "Finance"
    SUPPORT = "Support"
    CONTENT_EDITOR = "Content editor"
    PARTNER_MANAGER = "Partner manager"


_VIEW_OPS = [
    "catalog.view_listing",
    "catalog.view_category",
    "bookings.view_booking",
    "disputes.view_dispute",
    "disputes.view_disputeevidence",
    "payouts.view_payout",
    "partners.view_partner",
    "partners.view_partnermembership",
    "accounts.view_user",
    "reviews.view_review",
    "messaging.view_conversation",
    "messaging.view_message",
    "audit.view_event",
    "payments.view_payment",
    "payments.view_refund",
    "jobs.view_jobapplication",
]
# Model permissions of each staff group. Object scope comes separately from guardian grants.
GROUP_PERMISSIONS: dict[str, list[str]] = {
    StaffGroup.OPERATIONS_AGENT: _VIEW_OPS
    + [
        "catalog.change_listing",
        "catalog.moderate_listing",
        "bookings.change_booking",
        "bookings.operate_booking",
        "disputes.change_dispute",
        "disputes.resolve_dispute",
        "transfers.export_data",
    ],
    StaffGroup.OPERATIONS_LEAD: _VIEW_OPS
    + [
        "catalog.change_listing",
        "catalog.moderate_listing",
        "bookings.change_booking",
        "bookings.operate_booking",
        "disputes.change_dispute",
        "disputes.resolve_dispute",
        "disputes.assign_dispute",
        "disputes.approve_refund",
        "payouts.change_payout",
        "payouts.add_payout",
        "payouts.hold_payout",
        "payouts.view_payoutrun",
        "payouts.view_balanceadjustment",
        "ledger.view_reconciliationcheck",
        "notifications.view_emailoutbox",
        "notifications.change_emailoutbox",
        "partners.operate_all_partners",
        "partners.change_partner",
        "partners.change_partner_risk",
        "partners.add_partnermembership",
        "partners.change_partnermembership",
        "partners.delete_partnermembership",
        "partners.grant_partner_scope",
        "catalog.change_category",
        "catalog.change_category_commission",
        "transfers.export_data",
        "transfers.import_data",
        "catalog.add_category",
        "catalog.add_listing",
        "partners.add_partner",
        "accounts.add_user",
        "accounts.view_staff_timeline",
        "accounts.reset_second_factor",
        # Sign-in lockouts: see them, and clear one early by deleting its attempt row.
        "axes.view_accessattempt",
        "axes.delete_accessattempt",
        "axes.view_accesslog",
    ],
    StaffGroup.FINANCE: _VIEW_OPS
    + [
        "payouts.change_payout",
        "payouts.add_payout",
        "payouts.hold_payout",
        "payouts.approve_payout",
        "payouts.view_balanceadjustment",
        "payouts.add_balanceadjustment",
        "payouts.approve_balanceadjustment",
        "disputes.approve_refund",
        "ledger.view_ledgerentry",
        "ledger.view_ledgertransaction",
        "ledger.view_reconciliationcheck",
        "payouts.view_payoutrun",
        "partners.operate_all_partners",
        "partners.grant_partner_scope",
        "partners.change_partner_risk",
        "catalog.change_category_commission",
        "transfers.export_data",
    ],
    StaffGroup.SUPPORT: [
        "catalog.view_listing",
        "bookings.view_booking",
        "disputes.view_dispute",
        "accounts.view_user",
        "messaging.view_conversation",
        "messaging.view_message",
        "reviews.view_review",
        "partners.view_partner",
        "disputes.change_dispute",
    ],
    StaffGroup.CONTENT_EDITOR: ["wagtailadmin.access_admin"],
    StaffGroup.PARTNER_MANAGER: [
        "partners.view_partner",
        "partners.change_partner",
        "partners.add_partner",
        "partners.view_partnermembership",
        "partners.change_partnermembership",
        "partners.add_partnermembership",
        "partners.delete_partnermembership",
        "partners.view_partnerapikey",
        "partners.manage_api_keys",
        "catalog.view_listing",
        "catalog.view_category",
        "payouts.view_payout",
        "transfers.import_data",
    ],
}


def staff_groups_ensure() -> dict[str, Group]:
    """Create or update the staff groups and their model permissions. Running it twice changes nothing."""
    groups = {}
    with transaction.atomic():
        for name, perms in GROUP_PERMISSIONS.items():
            group, _ = Group.objects.get_or_create(name=name)
            wanted = set()
            for dotted in perms:
                app_label, codename = dotted.split(".")
                wanted.add(Permission.objects.get(content_type__app_label=app_label, codename=codename).pk)
            group_permissions_sync(group=group, wanted_ids=wanted)  # audited when it changes them
            groups[name] = group
    return groups


def user_register(*, email: str, password: str, role: str, full_name: str = "") -> User:
    """Create a public user (client, worker or service provider) and send the verification email.

    The password must pass the configured validators (AUTH_PASSWORD_VALIDATORS).
    """
    if role not in (User.Role.CLIENT, User.Role.WORKER, User.Role.SERVICE_PROVIDER):
        raise InvalidInput(f"Role '{role}' cannot be chosen at registration.")
    try:
        # The validators compare the password with the would-be user's email and name.
        validate_password(password, user=User(email=email, full_name=full_name))
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), extra={"password": exc.messages}) from exc
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, role=role, full_name=full_name)
            event_record(verb="user.registered", actor=user, target=user, data={"role": role})
            user_request_email_verification(user=user)
    except IntegrityError as exc:
        raise InvalidInput("An account with this email address already exists.") from exc
    return user


def email_verification_token(*, user: User) -> str:
    return signing.TimestampSigner(salt=VERIFY_SALT).sign(f"{user.pk}:{user.email}")


def user_request_email_verification(*, user: User) -> str:
    """Queue the verification email (through the outbox) and return the signed token."""
    token = email_verification_token(user=user)
    notify(
        user=user,
        verb="account.verify_email",
        title="Confirm your email address",
        body=f"Your confirmation code: {token}",
        target=user,
    )
    return token


def user_verify_email(*, token: str) -> User:
    """Mark the email verified if the token is genuine, fresh and still matches the address."""
    try:
        value = signing.TimestampSigner(salt=VERIFY_SALT).unsign(token, max_age=VERIFY_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise InvalidInput("This verification link has expired; ask for a new one.") from exc
    except signing.BadSignature as exc:
        raise InvalidInput("This verification link is not valid.") from exc
    pk, email = value.split(":", 1)
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=pk, email=email).first()
        if user is None:
            raise InvalidInput("This verification link no longer matches the account.")
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
            event_record(verb="user.email_verified", actor=user, target=user)
    return user
