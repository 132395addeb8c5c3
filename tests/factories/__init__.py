"""factory_boy factories. Objects in a given state are reached through the real services
(see `tests/factories/flows.py`), so tests never fake a state the services could not produce."""

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from marketplace.accounts.models import User
from marketplace.bookings.models import Booking
from marketplace.catalog.models import Category, Listing
from marketplace.core.money import fee_and_share
from marketplace.partners.models import Partner, PartnerMembership, PayoutAccount
from marketplace.payments.models import PaymentMethod


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Faker("name")
    role = User.Role.CLIENT
    password = factory.PostGenerationMethodCall("set_password", "pass-1234")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save(update_fields=["password"])


class ClientFactory(UserFactory):
    role = User.Role.CLIENT


class ProviderFactory(UserFactory):
    role = User.Role.SERVICE_PROVIDER


class WorkerFactory(UserFactory):
    role = User.Role.WORKER


class StaffFactory(UserFactory):
    role = User.Role.ADMIN
    is_staff = True

    @factory.post_generation
    def groups(obj, create, extracted, **kwargs):
        """StaffFactory(groups=["Operations agent"]) puts the user in those staff groups."""
        if create and extracted:
            from django.contrib.auth.models import Group

            obj.groups.add(*Group.objects.filter(name__in=extracted))


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner

    name = factory.Sequence(lambda n: f"Partner {n}")
    slug = factory.Sequence(lambda n: f"partner-{n}")


class PayoutAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PayoutAccount

    partner = factory.SubFactory(PartnerFactory)
    gateway_reference = factory.Sequence(lambda n: f"acct_{n:06d}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PartnerMembership

    partner = factory.SubFactory(PartnerFactory)
    user = factory.SubFactory(ProviderFactory)


class CategoryFactory(factory.django.DjangoModelFactory):
    """A root category; pass parent=<category> for a child (treebeard keeps the path)."""

    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")
    commission_rate = Decimal("0.1500")

    @classmethod
    def _create(cls, model_class, *args, parent=None, **kwargs):
        return parent.add_child(**kwargs) if parent else model_class.add_root(**kwargs)


class ListingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Listing

    kind = Listing.Kind.SERVICE
    title = factory.Sequence(lambda n: f"Listing {n}")
    owner = factory.SubFactory(ProviderFactory)
    partner = factory.SubFactory(PartnerFactory)
    category = factory.SubFactory(CategoryFactory)
    price = Decimal("100.00")
    status = Listing.Status.DRAFT


class PaymentMethodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentMethod

    user = factory.SubFactory(ClientFactory)
    gateway_token = factory.Sequence(lambda n: f"tok_test_{n}")
    brand = "visa"
    last4 = "4242"


class BookingFactory(factory.django.DjangoModelFactory):
    """A booking row in `requested`; drive it further with tests.factories.flows."""

    class Meta:
        model = Booking

    listing = factory.SubFactory(ListingFactory, status=Listing.Status.PUBLISHED)
    client = factory.SubFactory(ClientFactory)
    provider = factory.LazyAttribute(lambda o: o.listing.owner)
    partner = factory.LazyAttribute(lambda o: o.listing.partner)
    category = factory.LazyAttribute(lambda o: o.listing.category)
    starts_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(hours=2))
    amount = factory.LazyAttribute(lambda o: o.listing.price)
    commission_rate = factory.LazyAttribute(lambda o: o.listing.category.commission_rate)
    # The one fee definition (half up to the cent), as the booking service computes it.
    platform_fee = factory.LazyAttribute(lambda o: fee_and_share(o.amount, o.commission_rate)[0])
