"""An import preview names only objects in the importer's scope: an existing object out of it (a
partner's slug taken by another partner) is reported as "not found or not yours", nothing written."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from marketplace.partners.models import Partner
from marketplace.partners.services import partner_scope_grant
from tests.factories import PartnerFactory

pytestmark = pytest.mark.django_db


def test_partner_import_preview_does_not_name_another_partners_existing_slug(client, make_staff):
    # given a partner manager granted their own partner, and a rival partner out of their scope
    mine = PartnerFactory(slug="mine", name="Mine Ltd")
    rival = PartnerFactory(slug="rival", name="Rival Co")
    manager = make_staff("Partner manager")
    partner_scope_grant(partner=mine, grantee=manager)
    client.force_login(manager)
    # when they upload new partners whose slugs the two partners already hold
    body = b"name,slug\nNew Co,new-co\nAgain,mine\nCopycat,rival\n"
    response = client.post(
        reverse("admin:partners_partner_import"),
        {"format": "0", "resource": "0", "import_file": SimpleUploadedFile("partners.csv", body)},
    )
    # then their own partner is named, the rival is not: it reads as a missing one does
    errors = {row.number: row.error_dict for row in response.context["result"].invalid_rows}
    assert errors == {
        3: {"__all__": [f"Already exists: partner #{mine.pk}."]},
        4: {"__all__": ["Already exists: a partner not found or not yours."]},
    }
    page = response.content.decode()
    assert f"#{rival.pk}" not in page and "Rival Co" not in page
    # and nothing can be confirmed or was written
    assert response.context.get("confirm_form") is None
    assert not Partner.objects.filter(slug="new-co").exists()
