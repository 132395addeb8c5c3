"""Two confirmations of the same import at the same moment, from two connections: one writes, the
other is refused by the duplicate check it makes under the import's lock. Nothing is written twice."""

import pytest

from marketplace.catalog.models import Listing
from marketplace.catalog.resources import ListingImportResource
from marketplace.transfers.formats import SpreadsheetCSV
from marketplace.transfers.importing import ImportRefused
from tests.factories import CategoryFactory, MembershipFactory, PartnerFactory, StaffFactory
from tests.processes import error_type_name, run_in_processes

pytestmark = pytest.mark.django_db(transaction=True)

BODY = (
    b"title,partner,owner,category,price\n"
    b"Window cleaning,acme,owner@acme.test,cleaning,45.50\n"
    b"Oven cleaning,acme,owner@acme.test,cleaning,60\n"
)


def _import(user_id: int) -> int:
    from marketplace.accounts.models import User

    resource = ListingImportResource()
    plan = resource.plan(SpreadsheetCSV().create_dataset(BODY), user=User.objects.get(pk=user_id))
    assert plan.valid
    return resource.commit(plan, user=User.objects.get(pk=user_id), file_name="twice.csv")


def test_two_concurrent_imports_of_the_same_file_write_it_once():
    partner = PartnerFactory(slug="acme")
    MembershipFactory(partner=partner, user__email="owner@acme.test")
    CategoryFactory(slug="cleaning")
    lead = StaffFactory(is_superuser=True)
    outcomes = run_in_processes(lambda: _import(lead.pk), lambda: _import(lead.pk))
    winner, loser = outcomes.one_winner()
    assert winner.value == 2
    assert error_type_name(loser.error) == ImportRefused.__name__
    assert "duplicate" in str(loser.error)
    assert Listing.objects.count() == 2
