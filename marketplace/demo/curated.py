"""The curated demo's loader: walks the fixtures through the services, in dependency order.

Only the clock is helped: where a transition needs a deadline to have passed (the payment deadline,
the payout hold period, the review window, the dispute SLA), that deadline is first moved into the
past with a queryset update, the precondition the timer would otherwise wait for; each place says so.
"""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from marketplace.accounts.models import User
from marketplace.accounts.services import (
    email_verification_token,
    staff_groups_ensure,
    user_register,
    user_verify_email,
)
from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.bookings.services import booking_complete, booking_create, booking_request_payment, booking_start
from marketplace.catalog import services as catalog
from marketplace.catalog.models import Listing
from marketplace.disputes import services as disputes
from marketplace.disputes.models import OPEN_STATES, Dispute
from marketplace.jobs import services as jobs
from marketplace.jobs.models import JobApplication
from marketplace.messaging.services import conversation_for_booking, conversation_start_about_listing, message_send
from marketplace.partners.models import Partner, PayoutAccount
from marketplace.partners.services import (
    partner_create,
    partner_membership_add,
    partner_risk_flag_set,
    partner_scope_grant,
)
from marketplace.payments.models import PaymentMethod
from marketplace.payments.services import (
    booking_accept,
    booking_authorize,
    booking_cancel,
    booking_decline,
    booking_expire,
    payment_method_add,
)
from marketplace.payouts import services as payouts
from marketplace.payouts.models import Payout
from marketplace.reviews.services import review_submit, review_window_close

MARKER_EMAIL = "admin@demo.test"

# The moderation steps from a new draft to each listing state.
LISTING_PATHS: dict[str, list[str]] = {
    "draft": [],
    "pending_review": ["submit"],
    "changes_requested": ["submit", "request_changes"],
    "rejected": ["submit", "reject"],
    "published": ["submit", "approve"],
    "paused": ["submit", "approve", "pause"],
    "suspended": ["submit", "approve", "suspend"],
    "expired": ["submit", "approve", "expire"],
    "archived": ["submit", "approve", "archive"],
}
_PAID = ["request_payment", "authorize"]
_DONE = [*_PAID, "accept", "start", "complete"]
# The steps from a new booking request to each booking state this module drives itself. Disputed
# and resolved come from the disputes of 07_disputes.toml; closed is completed, then closed once
# the reviews of 09_engagement.toml are in.
BOOKING_PATHS: dict[str, list[str]] = {
    "requested": [],
    "pending_payment": ["request_payment"],
    "authorized": _PAID,
    "accepted": [*_PAID, "accept"],
    "declined": [*_PAID, "decline"],
    "expired": [*_PAID, "expire"],
    "cancelled": [*_PAID, "accept", "cancel"],
    "in_progress": [*_PAID, "accept", "start"],
    "completed": _DONE,
    "closed": _DONE,
}
# What a booking's status is once its dispute reached a state.
BOOKING_AFTER_DISPUTE = {
    **dict.fromkeys(OPEN_STATES, Booking.Status.DISPUTED),
    "resolved_release": Booking.Status.RESOLVED,
    "resolved_partial_refund": Booking.Status.RESOLVED,
    "resolved_full_refund": Booking.Status.RESOLVED,
    "withdrawn": Booking.Status.COMPLETED,
}
RESOLUTIONS = {
    "resolved_release": "release",
    "resolved_partial_refund": "partial_refund",
    "resolved_full_refund": "full_refund",
}


class DemoLoadError(Exception):
    """The fixtures ask for something the services did not produce, or the books do not balance."""


class CuratedLoader:
    """Walks the fixtures in dependency order, keeping what it made by fixture key."""

    def __init__(self, data: dict, log: Callable[[str], None]):
        self.data = data
        self.log = log
        self.now = timezone.now()
        self.users: dict[str, User] = {}
        self.partners: dict[str, Partner] = {}
        self.categories = {}
        self.listings: dict[str, Listing] = {}
        self.bookings: dict[str, Booking] = {}
        self.expected_booking: dict[str, str] = {}
        self.applications: list[tuple[JobApplication, str]] = []
        self.disputes: list[tuple[Dispute, dict]] = []
        self.payouts: list[tuple[Payout, str]] = []

    def run(self) -> None:
        steps = [
            ("staff", self.load_staff),
            ("public users", self.load_users),
            ("partners", self.load_partners),
            ("scope grants", self.load_grants),
            ("catalogue", self.load_catalog),
            ("job applications", self.load_applications),
            ("bookings", self.load_bookings),
            ("reviews", self.load_reviews),
            ("closed bookings", self.close_bookings),
            ("payouts", self.load_payouts),
            ("disputes", self.load_disputes),
            ("conversations", self.load_conversations),
            ("state check", self.check_states),
        ]
        for name, step in steps:
            self.log(f"  {name}…")
            step()

    def user(self, email: str) -> User:
        try:
            return self.users[email]
        except KeyError:
            raise DemoLoadError(f"The fixtures name {email}, which no fixture creates.") from None

    # --- People and partners -----------------------------------------------------------

    def load_staff(self) -> None:
        """Staff accounts. There is no staff service: the user manager creates them (as the
        createsuperuser command does) and each account and its groups are written to the audit log."""
        groups = staff_groups_ensure()
        password = self.data["password"]
        admin = None
        for row in self.data["staff"]:
            extra = {"full_name": row["full_name"], "email_verified_at": self.now}
            if row.get("superuser"):
                user = User.objects.create_superuser(email=row["email"], password=password, **extra)
            else:
                user = User.objects.create_user(
                    email=row["email"], password=password, role=User.Role.ADMIN, is_staff=True, **extra
                )
            names = row.get("groups", [])
            user.groups.add(*(groups[name] for name in names))
            event_record(
                verb="user.staff_created",
                actor=admin,
                target=user,
                data={"groups": names, "superuser": user.is_superuser},
            )
            admin = admin or (user if user.is_superuser else None)
            self.users[user.email] = user
        self.admin = admin

    def load_users(self) -> None:
        for row in self.data["users"]:
            user = user_register(
                email=row["email"], password=self.data["password"], role=row["role"], full_name=row["full_name"]
            )
            if row.get("verified"):
                user = user_verify_email(token=email_verification_token(user=user))
            if card := row.get("card"):
                payment_method_add(user=user, gateway_token=card["token"], brand=card["brand"], last4=card["last4"])
            self.users[user.email] = user

    def load_partners(self) -> None:
        manager = self.user(self.data.get("managed_by", MARKER_EMAIL))
        for row in self.data["partners"]:
            partner = partner_create(
                name=row["name"], actor=manager, kind=row["kind"], contact_email=row.get("contact_email", "")
            )
            # Partners have no payout-account service yet: set it directly, audited.
            PayoutAccount.objects.create(
                partner=partner,
                gateway_reference=row["payout_account"],
                holder_name=partner.name,
                verified_at=self.now,
            )
            event_record(
                verb="partner.payout_account_set",
                actor=manager,
                target=partner,
                data={"gateway_reference": row["payout_account"]},
            )
            if row.get("risk_flag"):
                # Risk is not the partner manager's to set: the superuser flags it.
                partner = partner_risk_flag_set(
                    partner=partner, flagged=True, actor=self.admin, reason="Demo: risk review"
                )
            for member in row.get("members", []):
                partner_membership_add(
                    partner=partner, user=self.user(member["email"]), role=member["role"], actor=manager
                )
            self.partners[partner.slug] = partner

    def load_grants(self) -> None:
        for row in self.data["staff"]:
            for slug in row.get("scope", []):
                partner_scope_grant(partner=self.partners[slug], grantee=self.user(row["email"]), actor=self.admin)

    # --- Catalogue and jobs --------------------------------------------------------------

    def load_catalog(self) -> None:
        curator = self.user(self.data.get("curator", MARKER_EMAIL))
        for root in self.data["categories"]:
            parent = self._category(root, parent=None, actor=curator)
            for child in root.get("children", []):
                self._category(child, parent=parent, actor=curator)
        for row in self.data["listings"]:
            self._listing(row)

    def _category(self, row: dict, *, parent, actor):
        if parent is not None:
            parent.refresh_from_db()  # treebeard adds children from the parent's current numchild
        category = catalog.category_create(
            name=row["name"],
            slug=row["slug"],
            commission_rate=Decimal(row["commission_rate"]),
            parent=parent,
            actor=actor,
        )
        self.categories[category.slug] = category
        return category

    def _listing(self, row: dict) -> None:
        owner = self.user(row["owner"])
        listing = catalog.listing_create(
            owner=owner,
            partner=self.partners[row["partner"]],
            category=self.categories[row["category"]],
            title=row["title"],
            description=row.get("description", ""),
            price=Decimal(row["price"]),
            kind=row.get("kind", Listing.Kind.SERVICE),
        )
        moderator = self.users.get(row.get("moderator", ""))
        reason = row.get("reason", "")
        for step in LISTING_PATHS[row["state"]]:
            if step == "submit":
                listing = catalog.listing_submit(listing=listing, actor=owner)
            elif step == "approve":
                listing = catalog.listing_approve(listing=listing, actor=moderator)
            elif step == "request_changes":
                listing = catalog.listing_request_changes(listing=listing, actor=moderator, reason=reason)
            elif step == "reject":
                listing = catalog.listing_reject(listing=listing, actor=moderator, reason=reason)
            elif step == "pause":
                listing = catalog.listing_pause(listing=listing, actor=owner)
            elif step == "suspend":
                listing = catalog.listing_suspend(listing=listing, actor=moderator, reason=reason)
            elif step == "expire":
                # The expiry timer's precondition: the listing's end date has passed.
                Listing.objects.filter(pk=listing.pk).update(ends_at=self.now - timedelta(days=1))
                listing = catalog.listing_expire(listing=listing, actor=None)
            elif step == "archive":
                listing = catalog.listing_archive(listing=listing, actor=owner)
        if edit := row.get("pending_edit"):
            data = {key: Decimal(value) if key == "price" else value for key, value in edit.items()}
            listing = catalog.listing_update(listing=listing, actor=owner, data=data)
        self.listings[row["key"]] = listing

    def load_applications(self) -> None:
        for row in self.data["applications"]:
            listing = self.listings[row["listing"]]
            applicant = self.user(row["applicant"])
            application = jobs.application_submit(
                listing=listing,
                applicant=applicant,
                proposed_amount=Decimal(row["proposed_amount"]),
                cover_letter=row.get("cover_letter", ""),
            )
            state = row["state"]
            if state == "shortlisted":
                application = jobs.application_shortlist(application=application, actor=listing.owner)
            elif state == "rejected":
                application = jobs.application_reject(
                    application=application, actor=listing.owner, reason=row.get("reason", "")
                )
            elif state == "withdrawn":
                application = jobs.application_withdraw(application=application, actor=applicant)
            elif state == "hired":
                hire = row["hire"]
                starts_at = self.now + timedelta(days=hire["starts_in_days"])
                application = jobs.application_hire(
                    application=application,
                    actor=listing.owner,
                    starts_at=starts_at,
                    ends_at=starts_at + timedelta(hours=hire["hours"]),
                )
                booking = self._drive_booking(application.booking, hire["state"], hire)
                self.bookings[hire["key"]] = booking
                self.expected_booking[hire["key"]] = hire["state"]
            self.applications.append((application, state))

    # --- Bookings, reviews, payouts, disputes --------------------------------------------

    def load_bookings(self) -> None:
        for row in self.data["bookings"]:
            starts_at = self.now + timedelta(days=row["starts_in_days"])
            ends_at = starts_at + timedelta(hours=row["hours"])
            # No booking may start in the past, so one that happened weeks ago is booked for
            # tomorrow through the service and its dates are then moved back (the demo's history).
            booked_start = max(starts_at, self.now + timedelta(days=1))
            booking = booking_create(
                listing=self.listings[row["listing"]],
                client=self.user(row["client"]),
                starts_at=booked_start,
                ends_at=booked_start + (ends_at - starts_at),
                note=row.get("note", ""),
            )
            if booked_start != starts_at:
                Booking.objects.filter(pk=booking.pk).update(starts_at=starts_at, ends_at=ends_at)
                booking.refresh_from_db()
            self.bookings[row["key"]] = self._drive_booking(booking, row["state"], row)
            self.expected_booking[row["key"]] = row["state"]

    def _drive_booking(self, booking: Booking, state: str, row: dict) -> Booking:
        client, provider = booking.client, booking.provider
        for step in BOOKING_PATHS[state]:
            if step == "request_payment":
                booking = booking_request_payment(booking=booking, actor=client)
            elif step == "authorize":
                method = PaymentMethod.objects.get(user=client, is_default=True)
                booking = booking_authorize(booking=booking, actor=client, method=method)
            elif step == "accept":
                booking = booking_accept(booking=booking, actor=provider)
            elif step == "decline":
                booking = booking_decline(booking=booking, actor=provider, reason=row.get("reason", ""))
            elif step == "expire":
                # The booking timer's precondition: the acceptance deadline (expires_at) has passed.
                Booking.objects.filter(pk=booking.pk).update(expires_at=self.now - timedelta(minutes=1))
                booking = booking_expire(booking=booking, actor=None)
            elif step == "cancel":
                booking = booking_cancel(booking=booking, actor=client, reason=row["reason"])
            elif step == "start":
                booking = booking_start(booking=booking, actor=provider)
            elif step == "complete":
                booking = booking_complete(booking=booking, actor=provider)
        return booking

    def _backdate_completion(self, booking: Booking) -> Booking:
        """Date the completion of a booking that ended weeks ago to just after its end.

        Bookings are completed at load time, but a payout only matures once the hold period after
        the last completion is over, and a booking only closes once its review window is over: the
        timestamps those timers read move into the past with the booking's own end.
        """
        completed_at = booking.ends_at + timedelta(hours=1)
        Booking.objects.filter(pk=booking.pk).update(
            started_at=booking.starts_at,
            completed_at=completed_at,
            review_window_ends_at=completed_at + timedelta(days=settings.MARKETPLACE_REVIEW_WINDOW_DAYS),
            dispute_window_ends_at=completed_at + timedelta(days=settings.MARKETPLACE_DISPUTE_WINDOW_DAYS),
        )
        booking.refresh_from_db()
        return booking

    def _party(self, booking: Booking, who: str) -> User:
        if who not in ("client", "provider"):
            raise DemoLoadError(f"A party is 'client' or 'provider', not {who!r}.")
        return booking.client if who == "client" else booking.provider

    def load_reviews(self) -> None:
        for row in self.data.get("reviews", []):
            booking = self.bookings[row["booking"]]
            review_submit(
                booking=booking,
                author=self._party(booking, row["author"]),
                rating=row["rating"],
                comment=row.get("comment", ""),
            )

    def close_bookings(self) -> None:
        for key, state in self.expected_booking.items():
            if state == Booking.Status.CLOSED:
                booking = self._backdate_completion(self.bookings[key])
                self.bookings[key] = review_window_close(booking=booking)

    def load_payouts(self) -> None:
        for row in self.data.get("payouts", []):
            bookings = [self.bookings[key] for key in row["bookings"]]
            if row.get("matured"):
                bookings = [self._backdate_completion(booking) for booking in bookings]
            payout = payouts.payout_create(partner=self.partners[row["partner"]], bookings=bookings, actor=None)
            self.payouts.append((self._drive_payout(payout, row), row["state"]))

    def _drive_payout(self, payout: Payout, row: dict) -> Payout:
        """Take a new payout to its state. Accruing and on_hold (risk-flagged partner, or a dispute
        opened later on one of its bookings) are where payout_create leaves it."""
        S = Payout.Status
        target = row["state"]
        if target in (S.ACCRUING, S.ON_HOLD):
            return payout
        if payout.status == S.ON_HOLD:
            payout = payouts.payout_release_hold(
                payout=payout, actor=self.user(row["released_by"]), reason="Risk review passed: account verified."
            )
        if payout.status == S.ACCRUING:
            payout = payouts.payout_mature(payout=payout)
        if target == S.READY:
            return payout
        if requester := row.get("requested_by"):
            payout = payouts.payout_request_approval(
                payout=payout, actor=self.user(requester), note="Above the approval threshold; please check."
            )
            if target == S.AWAITING_APPROVAL:
                return payout
            payout = payouts.payout_approve(payout=payout, actor=self.user(row["approved_by"]))
        else:
            payout = payouts.payout_auto_approve(payout=payout)
        if target == S.APPROVED:
            return payout
        attempt = payouts.payout_submit(payout=payout, actor=None)
        # payout_submit only queues the gateway call for after the commit (django-q2 is not in sync
        # mode with the dev settings); process the attempt here as the task would.
        payouts.payout_attempt_process(attempt_id=attempt.pk)
        payout.refresh_from_db()
        return payout

    def load_disputes(self) -> None:
        for row in self.data.get("disputes", []):
            booking = self.bookings[row["booking"]]
            opener = self._party(booking, row["opened_by"])
            dispute = disputes.dispute_open(
                booking=booking, actor=opener, reason_code=row["reason_code"], description=row["description"]
            )
            if assign := row.get("assign"):
                dispute = disputes.dispute_assign(
                    dispute=dispute, actor=self.user(assign["by"]), assignee=self.user(assign["to"])
                )
            for evidence in row.get("evidence", []):
                disputes.dispute_add_evidence(
                    dispute=dispute, actor=self._party(booking, evidence["by"]), text=evidence["text"]
                )
            dispute = self._drive_dispute(dispute, booking, opener, row)
            self.disputes.append((dispute, row))
            self.expected_booking[row["booking"]] = BOOKING_AFTER_DISPUTE[row["state"]]

    def _drive_dispute(self, dispute: Dispute, booking: Booking, opener: User, row: dict) -> Dispute:
        state = row["state"]
        handler = self.users.get(row.get("handler", ""))
        if state == "awaiting_response":
            dispute = disputes.dispute_request_response(dispute=dispute, actor=handler)
        elif state == "under_review" and row.get("response"):
            dispute = disputes.dispute_request_response(dispute=dispute, actor=handler)
            counterparty = booking.provider if opener.pk == booking.client_id else booking.client
            dispute = disputes.dispute_respond(dispute=dispute, actor=counterparty, text=row["response"])
        elif state in ("under_review", "escalated", *RESOLUTIONS):
            dispute = disputes.dispute_start_review(dispute=dispute, actor=handler)
        if state == "escalated":
            # The SLA timer's precondition: the review deadline (sla_due_at) has passed.
            Dispute.objects.filter(pk=dispute.pk).update(sla_due_at=self.now - timedelta(hours=1))
            dispute = disputes.dispute_escalate(dispute=dispute, actor=None, reason="SLA breached")
        elif state in RESOLUTIONS:
            dispute = disputes.dispute_resolve(
                dispute=dispute,
                actor=handler,
                outcome=RESOLUTIONS[state],
                reason_code=row["resolution_code"],
                note=row.get("note", ""),
                refund_amount=Decimal(row["refund"]) if "refund" in row else None,
            )
        elif state == "withdrawn":
            dispute = disputes.dispute_withdraw(dispute=dispute, actor=opener, reason=row.get("reason", ""))
        if proposal := row.get("proposal"):
            dispute = disputes.dispute_resolve(
                dispute=dispute,
                actor=handler,
                outcome=proposal["outcome"],
                reason_code=proposal["resolution_code"],
                note=proposal.get("note", ""),
                refund_amount=Decimal(proposal["refund"]),
            )
        return dispute

    def load_conversations(self) -> None:
        for row in self.data.get("conversations", []):
            if "booking" in row:
                conversation = conversation_for_booking(booking=self.bookings[row["booking"]])
            else:
                conversation = conversation_start_about_listing(
                    listing=self.listings[row["listing"]], user=self.user(row["starter"])
                )
            for message in row["messages"]:
                message_send(conversation=conversation, sender=self.user(message["from"]), body=message["body"])

    # --- The check -----------------------------------------------------------------------

    def check_states(self) -> None:
        """Every object is in the state its fixture declares, else the whole load rolls back."""
        wrong = []

        def expect(label: str, obj, state: str) -> None:
            obj.refresh_from_db()
            if obj.status != state:
                wrong.append(f"{label} is {obj.status!r}, the fixtures want {state!r}")

        for key, listing in self.listings.items():
            expect(f"listing {key}", listing, self._listing_state(key))
        for key, booking in self.bookings.items():
            expect(f"booking {key}", booking, self.expected_booking[key])
        for application, state in self.applications:
            expect(f"application #{application.pk}", application, state)
        for dispute, row in self.disputes:
            expect(f"dispute on {row['booking']}", dispute, row["state"])
            if "proposal" in row and not dispute.proposed_outcome:
                wrong.append(f"dispute on {row['booking']} has no proposed resolution waiting for approval")
        for payout, state in self.payouts:
            expect(f"payout #{payout.pk}", payout, state)
        if wrong:
            raise DemoLoadError("The demo did not reach the fixtures' states: " + "; ".join(wrong))

    def _listing_state(self, key: str) -> str:
        return next(row["state"] for row in self.data["listings"] if row["key"] == key)
