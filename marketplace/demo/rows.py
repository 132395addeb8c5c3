"""The rows of a scale load, built in Python from one seeded random.Random.

Every value is chosen so the row satisfies the models' constraints (fee within amount, ends after
starts, client never the provider, refunds within captures and split to the cent, valid states)
and so the ledger postings of each captured payment and refund balance. Timestamps follow each
state's story (a closed booking was completed more than a review window ago, a pending payment
waits less than its deadline). Money is computed in integer cents, then turned into Decimal.
"""

import random
import time
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from marketplace.accounts.models import User
from marketplace.bookings.models import Booking
from marketplace.catalog.models import Category, Listing
from marketplace.core.bulk import BulkWriter
from marketplace.core.money import fee_and_share
from marketplace.demo.demo import demo_password
from marketplace.disputes.models import Dispute
from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.partners.models import Partner, PartnerMembership, PayoutAccount
from marketplace.payments.models import Payment, PaymentMethod, Refund

CURRENCY = "EUR"
EMAIL_DOMAIN = "scale.demo.test"

# (name, commission rate in 1/10000, [(child, rate, (lowest, highest price in euros))])
CATEGORY_TREE = [
    (
        "Home services",
        1500,
        [("Cleaning", 1500, (40, 400)), ("Handyman", 1200, (50, 600)), ("Moving", 1000, (150, 1500))],
    ),
    ("Lessons", 2000, [("Tutoring", 1800, (20, 120)), ("Music lessons", 2000, (25, 150))]),
    ("Wellness", 1800, [("Massage", 1800, (40, 180)), ("Personal training", 1500, (30, 120))]),
    ("Events", 1000, [("Catering", 1000, (200, 3000)), ("Photography", 1200, (150, 2000))]),
]
BOOKING_MIX = {
    "requested": 5,
    "pending_payment": 3,
    "authorized": 4,
    "accepted": 8,
    "declined": 5,
    "expired": 4,
    "cancelled": 13,
    "in_progress": 3,
    "completed": 12,
    "disputed": 1,
    "resolved": 2,
    "closed": 40,
}
LISTING_MIX = {
    "published": 70,
    "paused": 5,
    "suspended": 2,
    "expired": 4,
    "archived": 4,
    "draft": 5,
    "pending_review": 5,
    "changes_requested": 3,
    "rejected": 2,
}
ONCE_LIVE = {"published", "paused", "suspended", "expired", "archived"}
ACTIVE = {"requested", "pending_payment", "authorized", "accepted", "in_progress"}
CAPTURED = {"accepted", "in_progress", "completed", "disputed", "resolved", "closed"}
MODERATION_REASONS = {
    "changes_requested": "Add what is included in the price and the area you cover.",
    "rejected": "This service is not allowed on the marketplace.",
    "suspended": "Suspended after repeated complaints; waiting for the partner's answer.",
}
OPEN_DISPUTES = ["opened", "awaiting_response", "under_review", "escalated"]
DISPUTE_REASONS = ["not_delivered", "not_as_described", "quality", "no_show", "billing", "other"]
CANCEL_REASONS = ["Plans changed.", "Found someone closer.", "The date no longer works.", "Booked by mistake."]
FIRST = "Ada Ben Chloe Dev Elif Farah Gus Hana Ines Jon Kai Lea Milo Nia Omar Pia Quinn Rosa Sami Tara Umar Vera Wim Yara Zoe"
LAST = "Adler Berg Costa Dahl Evans Fox Garcia Haas Ito Jensen Kovac Laine Moreau Novak Ortiz Petit Quist Rossi Silva Torres"
FIRST_NAMES, LAST_NAMES = FIRST.split(), LAST.split()
PARTNER_WORDS = ["Bright", "North", "Quick", "Green", "Blue", "Swift", "Able", "Prime", "Urban", "Happy"]
PARTNER_KINDS = ["Cleaning", "Repairs", "Movers", "Tutors", "Helpers", "Crew", "Studio", "Works"]
VARIANTS = ["quick visit", "half day", "full day", "weekly", "premium", "express", "weekend", "evening"]

DAY = 86400.0
HOUR = 3600.0


def _cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _weighted(mix: dict[str, int]) -> tuple[list[str], list[int]]:
    names, cumulative, total = [], [], 0
    for name, weight in mix.items():
        total += weight
        names.append(name)
        cumulative.append(total)
    return names, cumulative


class RowGenerator:
    """Builds and writes the rows of one scale run, table by table, in foreign-key order."""

    def __init__(self, plan, *, seed: int, label: str, writer: BulkWriter, batch_size: int, log):
        self.plan = plan
        self.rng = random.Random(seed)
        self.label = label
        self.writer = writer
        self.batch_size = batch_size
        self.log = log
        self.now = timezone.now().replace(microsecond=0)
        self.rows: Counter = Counter()
        self.booking_states: Counter = Counter()
        # Read before the writer starts: from then on the load's connection belongs to the COPY thread.
        last_root = Category.get_last_root_node()
        self.last_root_step = Category._str2int(last_root.path[: Category.steplen]) if last_root else 0

    def run(self, started: float) -> None:
        self.started = started
        self.make_categories()
        self.make_partners()
        self.make_users()
        self.make_listings()
        self.make_bookings()

    # --- helpers -------------------------------------------------------------------------

    def ago(self, low: float, high: float) -> datetime:
        """A moment between `high` and `low` seconds ago."""
        return self.now - timedelta(seconds=low + self.rng.random() * (high - low))

    def emit(self, model, rows: list[tuple]) -> None:
        for start in range(0, len(rows), self.batch_size):
            self.writer.write(model, rows[start : start + self.batch_size])
        self.rows[model] += len(rows)

    def progress(self, what: str) -> None:
        elapsed = time.perf_counter() - self.started
        total = sum(self.rows.values())
        self.log(f"  {what:<52} {total:>11,} rows  {elapsed:7.1f} s  {total / max(elapsed, 1e-9):>9,.0f} rows/s")

    # --- reference data ------------------------------------------------------------------

    def make_categories(self) -> None:
        """A 2-level tree appended after the existing roots; paths computed as treebeard does."""
        step = self.last_root_step
        count = sum(1 + len(children) for _, _, children in CATEGORY_TREE)
        ids = iter(self.writer.reserve_ids(Category, count))
        rows, self.leaves = [], []
        for r, (name, rate, children) in enumerate(CATEGORY_TREE, start=1):
            path = Category._get_path(None, 1, step + r)
            root_slug = f"{self.label}-{name.lower().replace(' ', '-')}"
            rows.append((next(ids), path, 1, len(children), f"{name} ({self.label})", root_slug, _bp(rate), True))
            for c, (child, child_rate, prices) in enumerate(children, start=1):
                pk = next(ids)
                slug = f"{root_slug}-{child.lower().replace(' ', '-')}"
                rows.append((pk, Category._get_path(path, 2, c), 2, 0, child, slug, _bp(child_rate), True))
                self.leaves.append((pk, child, child_rate, prices))
        self.emit(Category, rows)

    def make_partners(self) -> None:
        rnd, n = self.rng.random, self.plan.partners
        ids = self.writer.reserve_ids(Partner, n)
        account_ids = iter(self.writer.reserve_ids(PayoutAccount, n))
        partners, accounts = [], []
        for i, pk in enumerate(ids):
            if i == 0:
                name, kind, risk = f"Gigboard {self.label}", "integrator", False
            else:
                word = PARTNER_WORDS[i % len(PARTNER_WORDS)]
                name = f"{word} {PARTNER_KINDS[(i // len(PARTNER_WORDS)) % len(PARTNER_KINDS)]} {i}"
                kind, risk = "provider", rnd() < 0.02
            created = self.ago(400 * DAY, 800 * DAY)
            slug = f"{self.label}-partner-{i}"
            partners.append((pk, name, slug, kind, "active", f"{slug}@{EMAIL_DOMAIN}", risk, created))
            accounts.append((next(account_ids), pk, f"acct_{self.label}_{i:06d}", CURRENCY, name, created, created))
        self.integrator = ids[0]
        self.provider_partners = ids[1:]
        self.emit(Partner, partners)
        self.emit(PayoutAccount, accounts)
        self.progress("categories, partners, payout accounts")

    def make_users(self) -> None:
        """Clients with a saved card each, and service providers who are members of a partner.
        One password hash, computed once, for all of them (hashing per row would take hours)."""
        rng, rnd, plan, label = self.rng, self.rng.random, self.plan, self.label
        password = make_password(demo_password())
        ids = self.writer.reserve_ids(User, plan.clients + plan.providers)
        self.client_ids, self.provider_ids = ids[: plan.clients], ids[plan.clients :]
        self.user_names = {}
        users = []
        for role, prefix, pks in (
            ("client", "client", self.client_ids),
            ("service_provider", "pro", self.provider_ids),
        ):
            for i, pk in enumerate(pks):
                joined = self.ago(370 * DAY, 800 * DAY)
                verified = joined + timedelta(seconds=60 + rnd() * DAY) if rnd() < 0.9 else None
                name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
                email = f"{label}.{prefix}{i}@{EMAIL_DOMAIN}"
                users.append((pk, password, None, False, "", "", False, True, joined, email, name, role, verified))
                if role == "service_provider":
                    self.user_names[pk] = name
        self.emit(User, users)
        del users

        partners = self.provider_partners
        self.provider_partner = {}
        memberships = []
        membership_ids = iter(self.writer.reserve_ids(PartnerMembership, len(self.provider_ids)))
        for j, pk in enumerate(self.provider_ids):
            partner = partners[j % len(partners)]
            self.provider_partner[pk] = partner
            role = "owner" if j < len(partners) else "member"
            memberships.append((next(membership_ids), partner, pk, role, self.ago(360 * DAY, 365 * DAY)))
        self.emit(PartnerMembership, memberships)

        self.client_method = {}
        methods = []
        method_ids = iter(self.writer.reserve_ids(PaymentMethod, len(self.client_ids)))
        for i, pk in enumerate(self.client_ids):
            method_id = next(method_ids)
            self.client_method[pk] = method_id
            brand = ("visa", "mastercard", "amex")[i % 3]
            created = self.ago(366 * DAY, 369 * DAY)
            methods.append(
                (method_id, pk, f"tok_{label}_{i}", brand, f"{i % 10000:04d}", 1 + i % 12, 2027 + i % 4, True, created)
            )
        self.emit(PaymentMethod, methods)
        self.progress("users, memberships, payment methods")

    def make_listings(self) -> None:
        rng, rnd, now = self.rng, self.rng.random, self.now
        names, cumulative = _weighted(LISTING_MIX)
        states = rng.choices(names, cum_weights=cumulative, k=self.plan.listings)
        states[0] = "published"  # there is always something to book
        ids = self.writer.reserve_ids(Listing, self.plan.listings)
        self.live, self.once_live = [], []
        rows = []
        for i, (pk, state) in enumerate(zip(ids, states, strict=True)):
            category, leaf, rate_bp, (low, high) = self.leaves[int(rnd() * len(self.leaves))]
            price_cents = int(low + rnd() * (high - low)) * 100 + (50 if rnd() < 0.3 else 0)
            is_job = i > 0 and rnd() < 0.05
            if is_job:
                owner, partner, kind = self.client_ids[int(rnd() * len(self.client_ids))], self.integrator, "job"
                title = f"Looking for help: {leaf.lower()}"
            else:
                owner = self.provider_ids[int(rnd() * len(self.provider_ids))]
                partner, kind = self.provider_partner[owner], "service"
                title = f"{leaf}, {VARIANTS[int(rnd() * len(VARIANTS))]} with {self.user_names[owner].split()[0]}"
            submitted = published = ends = None
            if state in ONCE_LIVE:
                created = self.ago(380 * DAY, 720 * DAY)
                submitted = created + timedelta(seconds=rnd() * 2 * DAY)
                published = submitted + timedelta(seconds=HOUR + rnd() * 3 * DAY)
                updated = published
                if state == "expired":
                    ends = self.ago(DAY, 300 * DAY)
                    updated = ends
                elif state != "published":
                    updated = self.ago(DAY, 300 * DAY)
            else:
                created = self.ago(HOUR, 30 * DAY)
                if state != "draft":
                    submitted = created + timedelta(seconds=rnd() * (now - created).total_seconds() / 2)
                updated = submitted or created
            reason = MODERATION_REASONS.get(state, "")
            price = _cents(price_cents)
            rows.append(
                (pk, kind, title, "", owner, partner, category, price, CURRENCY, state, reason, None, None)
                + (submitted, published, ends, created, updated)
            )
            if kind == "service" and state in ONCE_LIVE:
                fee, _ = fee_and_share(price, _bp(rate_bp))  # the one fee definition
                fee_cents = int(fee * 100)
                entry = (pk, owner, partner, category, price, -price, fee, -fee, _bp(rate_bp), price_cents, fee_cents)
                self.once_live.append(entry)
                if state == "published":
                    self.live.append(entry)
        self.emit(Listing, rows)
        self.progress("listings")

    # --- bookings and money --------------------------------------------------------------

    def make_bookings(self) -> None:
        names, cumulative = _weighted(BOOKING_MIX)
        done = 0
        while done < self.plan.bookings:
            size = min(self.batch_size, self.plan.bookings - done)
            states = self.rng.choices(names, cum_weights=cumulative, k=size)
            self.booking_batch(states)
            done += size
            self.progress(f"bookings {done:,}/{self.plan.bookings:,}")

    def booking_batch(self, states: list[str]) -> None:
        """One batch: decide each booking's path first (so the ids of every table can be reserved
        in one query each), then build the rows of all six tables and write them in key order."""
        rnd = self.rng.random
        variants = []
        payments = refunds = disputes = captured = 0
        for state in states:
            roll = rnd()
            if state in ("declined", "expired"):
                variant = 1 if roll < 0.6 else 0  # 1: an authorisation was voided
                payments += variant
            elif state == "cancelled":
                variant = 2 if roll < 0.5 else (1 if roll < 0.75 else 0)  # 2: captured then refunded
                payments += variant > 0
                refunds += variant == 2
                captured += variant == 2
            elif state == "resolved":
                variant = 1 if roll < 0.4 else 0  # 1: resolved with a partial refund
                refunds += variant
            else:
                variant = 0
            if state in CAPTURED:
                payments += 1
                captured += 1
            elif state == "authorized":
                payments += 1
            if state in ("disputed", "resolved"):
                disputes += 1
            variants.append(variant)
        reserve = self.writer.reserve_ids
        ids = {
            Booking: iter(reserve(Booking, len(states))),
            Payment: iter(reserve(Payment, payments)),
            Refund: iter(reserve(Refund, refunds)),
            Dispute: iter(reserve(Dispute, disputes)),
            LedgerTransaction: iter(reserve(LedgerTransaction, 2 * captured + refunds)),
            LedgerEntry: iter(reserve(LedgerEntry, 4 * captured + 3 * refunds)),
        }
        out = {model: [] for model in ids}
        for state, variant in zip(states, variants, strict=True):
            self.booking_row(state, variant, ids, out)
        self.booking_states.update(states)
        for model, rows in out.items():  # one COPY per table and batch, however many rows it has
            self.writer.write(model, rows)
            self.rows[model] += len(rows)

    def booking_row(self, state: str, variant: int, ids: dict, out: dict) -> None:
        rnd, now, td = self.rng.random, self.now, timedelta
        pool = self.live if state in ACTIVE else self.once_live
        listing, owner, partner, category, price, neg_price, fee, neg_fee, rate, price_cents, fee_cents = pool[
            int(rnd() * len(pool))
        ]
        client = self.client_ids[int(rnd() * len(self.client_ids))]
        hours = td(hours=1 + int(rnd() * 8))
        booking_id = next(ids[Booking])
        expires = authorized = accepted = started = completed = cancelled = closed = None
        review_end = dispute_end = None
        reason = ""
        has_payment = state in CAPTURED or state == "authorized" or variant > 0
        is_captured = state in CAPTURED or (state == "cancelled" and variant == 2)

        if state in ("requested", "pending_payment", "authorized"):
            created = self.ago(60, 25 * 60) if state == "pending_payment" else self.ago(HOUR, 40 * HOUR)
            starts = now + td(seconds=2 * DAY + rnd() * 28 * DAY)
            updated = created
            if state == "pending_payment":
                expires = created + td(minutes=settings.MARKETPLACE_PAYMENT_EXPIRY_MINUTES)
            elif state == "authorized":
                authorized = created + td(seconds=300 + rnd() * 1500)
                expires = authorized + td(hours=settings.MARKETPLACE_ACCEPT_EXPIRY_HOURS)
                updated = authorized
        elif state in ("accepted", "in_progress"):
            if state == "accepted":
                starts = now + td(seconds=HOUR + rnd() * 20 * DAY)
                created = self.ago(DAY, 20 * DAY)
            else:
                hours = td(hours=4 + int(rnd() * 5))
                starts = self.ago(600, 3 * HOUR)
                created = starts - td(seconds=DAY + rnd() * 14 * DAY)
            authorized = created + td(seconds=300 + rnd() * 1500)
            accepted = authorized + td(seconds=600 + rnd() * 0.5 * DAY)
            started = starts if state == "in_progress" else None
            updated = started or accepted
        elif state in ("completed", "disputed", "resolved", "closed"):
            if state in ("completed", "disputed"):
                completed = self.ago(HOUR, 13 * DAY)
            elif state == "resolved":
                completed = self.ago(20 * DAY, 300 * DAY)
            else:
                completed = self.ago(15 * DAY, 365 * DAY)
            ends = completed - td(seconds=rnd() * 20 * HOUR)
            starts = started = ends - hours
            created = starts - td(seconds=DAY + rnd() * 14 * DAY)
            authorized = created + td(seconds=300 + rnd() * 1500)
            accepted = authorized + td(seconds=600 + rnd() * 0.5 * DAY)
            review_end = completed + td(days=settings.MARKETPLACE_REVIEW_WINDOW_DAYS)
            dispute_end = completed + td(days=settings.MARKETPLACE_DISPUTE_WINDOW_DAYS)
            updated = completed
            if state == "closed":
                closed = updated = review_end
        else:  # declined, expired, cancelled: any time in the last year, and over by now
            created = self.ago(6 * DAY, 365 * DAY)
            starts = created + td(seconds=2 * DAY + rnd() * 30 * DAY)
            if has_payment:
                authorized = created + td(seconds=300 + rnd() * 1500)
            if state == "declined":
                updated = (authorized or created) + td(seconds=HOUR + rnd() * DAY)
            elif state == "expired":
                updated = authorized + td(hours=48) if authorized else created + td(minutes=30)
            else:
                if is_captured:
                    accepted = authorized + td(seconds=600 + rnd() * 0.5 * DAY)
                cancelled = (accepted or authorized or created) + td(seconds=HOUR + rnd() * 4 * DAY)
                if cancelled >= starts:
                    starts = cancelled + td(seconds=HOUR + rnd() * 3 * DAY)
                updated = cancelled
                reason = CANCEL_REASONS[int(rnd() * len(CANCEL_REASONS))]
        ends = starts + hours if state not in ("completed", "disputed", "resolved", "closed") else ends

        out[Booking].append(
            (booking_id, listing, client, owner, partner, category, state, starts, ends, price, fee, rate, CURRENCY)
            + ("", expires, authorized, accepted, started, completed, cancelled, closed, review_end, dispute_end)
            + (reason, created, updated)
        )
        if not has_payment:
            return

        payment_id = next(ids[Payment])
        refund_cents = platform_cents = 0
        dispute_at = resolved_at = None
        if state == "cancelled" and is_captured:
            if cancelled <= starts - td(hours=settings.MARKETPLACE_CANCEL_FULL_REFUND_HOURS):
                refund_cents = price_cents
            else:  # the late-cancellation share of the policy
                refund_cents = (price_cents * 50 + 50) // 100
        if state in ("disputed", "resolved"):
            span = (now - completed).total_seconds() if state == "disputed" else 10 * DAY
            dispute_at = completed + td(seconds=rnd() * min(span, 13 * DAY))
            if state == "resolved":
                resolved_at = dispute_at + td(seconds=DAY + rnd() * 9 * DAY)
                out[Booking][-1] = out[Booking][-1][:-1] + (resolved_at,)
                if variant == 1:
                    refund_cents = (price_cents * 30 + 50) // 100
        if refund_cents:
            if refund_cents == price_cents:
                platform_cents = fee_cents
            else:  # in proportion to the commission, as payment_refund splits it
                platform_cents = min(fee_cents, (2 * refund_cents * fee_cents + price_cents) // (2 * price_cents))
                platform_cents = _float_safe_split(refund_cents, platform_cents, fee_cents)

        if is_captured:
            status = "captured"
            if refund_cents:
                status = "refunded" if refund_cents == price_cents else "partially_refunded"
        else:
            status = "voided" if state in ("declined", "expired", "cancelled") else "authorized"
        captured_amount = price if is_captured else Decimal("0.00")
        refunded = _cents(refund_cents)
        out[Payment].append(
            (payment_id, booking_id, self.client_method[client], price, CURRENCY, status, captured_amount, refunded)
            + (f"sbx_aut_{self.label}_{payment_id}", authorized, accepted, updated)
        )
        if is_captured:
            source = f"payments.payment:{payment_id}"
            transactions, entries = out[LedgerTransaction], out[LedgerEntry]
            capture_id, fee_id = next(ids[LedgerTransaction]), next(ids[LedgerTransaction])
            transactions.append(
                (capture_id, "capture", booking_id, source, f"capture:{payment_id}", CURRENCY, "", accepted)
            )
            transactions.append(
                (fee_id, "platform_fee", booking_id, source, f"fee:{payment_id}", CURRENCY, "", accepted)
            )
            entry = ids[LedgerEntry]
            entries.append((next(entry), capture_id, "cash", None, price, CURRENCY, accepted))
            entries.append((next(entry), capture_id, "provider_payable", partner, neg_price, CURRENCY, accepted))
            entries.append((next(entry), fee_id, "provider_payable", partner, fee, CURRENCY, accepted))
            entries.append((next(entry), fee_id, "platform_revenue", None, neg_fee, CURRENCY, accepted))

        dispute_id = None
        if dispute_at is not None:
            dispute_id = next(ids[Dispute])
            sla_due = dispute_at + td(hours=settings.MARKETPLACE_DISPUTE_SLA_HOURS)
            response_due = escalated = None
            if resolved_at is not None:
                status = "resolved_partial_refund" if refund_cents else "resolved_release"
                code, refund_amount, updated = ("partial_service" if refund_cents else "release"), refunded, resolved_at
            else:
                status = OPEN_DISPUTES[int(rnd() * len(OPEN_DISPUTES))]
                code, refund_amount, updated = "", None, dispute_at
                if status == "awaiting_response":
                    response_due = dispute_at + td(hours=settings.MARKETPLACE_DISPUTE_RESPONSE_HOURS)
                elif status == "escalated":
                    escalated = min(now, sla_due)
            out[Dispute].append(
                (dispute_id, booking_id, partner, client, DISPUTE_REASONS[int(rnd() * len(DISPUTE_REASONS))])
                + ("Generated dispute.", status, None, response_due, sla_due, escalated, "", None, None, None)
                + (code, "", refund_amount, None, None, resolved_at, dispute_at, updated)
            )

        if refund_cents:
            refund_id = next(ids[Refund])
            at = resolved_at or cancelled
            key = f"dispute:{dispute_id}" if dispute_id else f"cancel:booking:{booking_id}"
            amount, platform = refunded, _cents(platform_cents)
            provider = _cents(refund_cents - platform_cents)
            out[Refund].append(
                (refund_id, payment_id, amount, provider, platform, CURRENCY, reason or "Dispute resolution")
                + (f"sbx_ref_{self.label}_{refund_id}", key, None, at)
            )
            txn = next(ids[LedgerTransaction])
            out[LedgerTransaction].append(
                (txn, "refund", booking_id, f"payments.refund:{refund_id}", f"refund:{refund_id}", CURRENCY, "", at)
            )
            entry = ids[LedgerEntry]
            out[LedgerEntry].append((next(entry), txn, "provider_payable", partner, provider, CURRENCY, at))
            out[LedgerEntry].append((next(entry), txn, "platform_revenue", None, platform, CURRENCY, at))
            out[LedgerEntry].append((next(entry), txn, "cash", None, -amount, CURRENCY, at))


def _bp(rate: int) -> Decimal:
    """A commission rate given in 1/10000 as a Decimal with four places."""
    return Decimal(rate).scaleb(-4)


def _float_safe_split(total: int, part: int, most: int) -> int:
    """Move `part` (cents) by the fewest cents so that part + (total - part) == total in binary floats too.

    SQLite stores decimals as REAL and checks refund_shares_sum_to_amount in floating point:
    22.00 at 15 % refunded 6.60 splits into 0.99 + 5.61, which is not 6.60 as doubles, and the
    database refuses the row. PostgreSQL's numeric is exact; the same split is used there so a seed
    gives the same data on both.
    """
    for step in (0, -1, 1, -2, 2, -3, 3):
        candidate = part + step
        if 0 <= candidate <= min(most, total) and (candidate / 100) + ((total - candidate) / 100) == total / 100:
            return candidate
    return part
