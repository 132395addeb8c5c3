"""Import, export and import-preview files are private: outside MEDIA_ROOT, under unguessable
names, read only through the admin's download view, which checks the requester's scope and audits.

The old public address is tried with the URLs as dev settings build them (DEBUG on: runserver
serves MEDIA_ROOT under /media/), which is what published the files before.
"""

import importlib
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import clear_url_caches, reverse
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.partners.services import partner_scope_grant
from marketplace.transfers.models import TransferJob
from tests.factories import CategoryFactory, ListingFactory, MembershipFactory, PartnerFactory

pytestmark = pytest.mark.django_db

HEADER = "title,partner,owner,category,price\n"
TOKEN_NAME = re.compile(r"^transfers/\d{4}/\d{2}/(import|export)-[A-Za-z0-9_-]{22}\.(csv|xlsx)$")


@pytest.fixture
def dev_urls(settings):
    """The root URLconf as built with DEBUG on (dev settings), so /media/ is served from MEDIA_ROOT."""
    import config.urls

    settings.DEBUG = True
    importlib.reload(config.urls)
    settings.DEBUG = False  # the requests themselves run as in production: no debug pages
    clear_url_caches()
    yield
    importlib.reload(config.urls)
    clear_url_caches()


@pytest.fixture
def catalogue():
    partner = PartnerFactory(slug="acme")
    MembershipFactory(partner=partner, user__email="owner@acme.test")
    CategoryFactory(slug="cleaning")
    return partner


def csv_rows(count: int) -> bytes:
    lines = [HEADER] + [f"Listing {i},acme,owner@acme.test,cleaning,{10 + i}.00\n" for i in range(count)]
    return "".join(lines).encode()


def post_import(client, content: bytes):
    return client.post(
        reverse("admin:catalog_listing_import"),
        {"format": "0", "resource": "0", "import_file": SimpleUploadedFile("big.csv", content)},
    )


def download_url(job) -> str:
    return reverse("admin:transfers_job_download", args=[job.pk])


def under_media(settings, path: str) -> bool:
    return Path(path).resolve().is_relative_to(Path(settings.MEDIA_ROOT).resolve())


def media_files(settings) -> list[str]:
    return [str(p.relative_to(settings.MEDIA_ROOT)) for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def old_public_paths(job) -> list[str]:
    """Where the file was published before: its name under /media/, and the guessable one."""
    month = timezone.now().strftime("%Y/%m")
    return [f"/media/{job.file.name}", f"/media/transfers/{month}/{job.kind}-{job.pk}.{job.file_format}"]


def test_large_import_file_is_404_at_its_old_public_url_private_and_unguessable(
    client, make_staff, settings, catalogue, dev_urls, django_capture_on_commit_callbacks
):
    # given a lead's import large enough to become a job
    settings.MARKETPLACE_IMPORT_INLINE_MAX_BYTES = 100
    client.force_login(make_staff("Operations lead"))
    content = csv_rows(5)
    with django_capture_on_commit_callbacks(execute=True):
        post_import(client, content)
    job = TransferJob.objects.get()
    # when an anonymous visitor asks for it at /media/, they get 404 and no file
    client.logout()
    for url in old_public_paths(job):
        response = client.get(url)
        assert response.status_code == 404, url
        assert content not in response.content
    # and the download view sends them to sign in, with no file
    response = client.get(download_url(job))
    assert response.status_code in (302, 404)
    assert not hasattr(response, "streaming_content")
    # a staff member out of scope gets 404 at both addresses
    client.force_login(make_staff("Operations lead"))
    for url in [*old_public_paths(job), download_url(job)]:
        assert client.get(url).status_code == 404, url
    # then its stored name says nothing and cannot be guessed, and it lives outside MEDIA_ROOT
    assert TOKEN_NAME.match(job.file.name), job.file.name
    assert f"-{job.pk}." not in job.file.name
    assert not under_media(settings, job.file.path)
    assert not [name for name in media_files(settings) if name.startswith("transfers/")]


def test_import_preview_file_is_404_at_media_and_kept_privately(client, make_staff, settings, catalogue, dev_urls):
    # given an upload small enough for the preview, waiting for its confirmation
    client.force_login(make_staff("Operations lead"))
    content = csv_rows(2)
    preview = post_import(client, content)
    name = preview.context["confirm_form"].initial["import_file_name"]
    # when an anonymous visitor asks for it at /media/, they get 404
    client.logout()
    assert client.get(f"/media/django-import-export/{name}").status_code == 404
    # then it is kept in the private storage, under a random name, not in the media tree
    from django.core.files.storage import storages

    path = storages["import_export"].path(f"django-import-export/{name}")
    assert Path(path).read_bytes() == content
    assert not under_media(settings, path)
    assert not [n for n in media_files(settings) if n.startswith("django-import-export/")]


@pytest.fixture
def export_job(client, make_staff, settings, django_capture_on_commit_callbacks):
    """An agent's export of their partner's three listings, run as a job."""
    settings.MARKETPLACE_EXPORT_INLINE_MAX_ROWS = 2
    own = PartnerFactory(slug="own")
    agent = make_staff("Operations agent")
    partner_scope_grant(partner=own, grantee=agent)
    for i in range(3):
        ListingFactory(partner=own, title=f"Own {i}")
    client.force_login(agent)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:catalog_listing_export"), {"format": "0", "resource": "0"})
    client.logout()
    job = TransferJob.objects.get(kind="export")
    assert job.status == "done", job.message
    return agent, job


def test_export_file_is_downloaded_only_by_its_author_and_audited(client, make_staff, settings, export_job, dev_urls):
    agent, job = export_job
    # anonymous: 404 at the old public address, a sign-in page (no file) at the download view
    for url in old_public_paths(job):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"Own 0" not in response.content
    response = client.get(download_url(job))
    assert response.status_code in (302, 404)
    assert not hasattr(response, "streaming_content")
    # staff out of scope: another agent (with the export permission) and Support (without): 404
    for outsider in (make_staff("Operations agent"), make_staff("Support")):
        client.force_login(outsider)
        for url in [*old_public_paths(job), download_url(job)]:
            assert client.get(url).status_code == 404, (outsider.groups.first().name, url)
    assert not Event.objects.filter(verb="transfer.downloaded").exists()
    # the author: a link on the job's page, the file as an attachment, an audit event on their timeline
    client.force_login(agent)
    page = client.get(reverse("admin:transfers_transferjob_change", args=[job.pk]))
    assert download_url(job) in page.content.decode()
    response = client.get(download_url(job))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(f'attachment; filename="{job.file_name}"')
    assert "Own 0" in b"".join(response.streaming_content).decode("utf-8")
    event = Event.objects.get(verb="transfer.downloaded")
    assert event.actor == agent
    assert event.data == {"job": job.pk, "kind": "export", "model": "catalog.listing", "file_name": job.file_name}
    # and the file is private, under an unguessable name
    assert TOKEN_NAME.match(job.file.name), job.file.name
    assert not under_media(settings, job.file.path)


def test_import_file_downloads_for_its_author(
    client, make_staff, settings, catalogue, django_capture_on_commit_callbacks
):
    settings.MARKETPLACE_IMPORT_INLINE_MAX_BYTES = 100
    lead = make_staff("Operations lead")
    client.force_login(lead)
    content = csv_rows(5)
    with django_capture_on_commit_callbacks(execute=True):
        post_import(client, content)
    job = TransferJob.objects.get()
    response = client.get(download_url(job))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="big.csv"'
    assert b"".join(response.streaming_content) == content
    assert Event.objects.get(verb="transfer.downloaded").data["kind"] == "import"
    client.force_login(make_staff("Operations lead"))
    assert client.get(download_url(job)).status_code == 404


def test_private_files_have_no_public_url(export_job):
    _, job = export_job
    with pytest.raises(ValueError, match="no public URL"):
        job.file.url  # noqa: B018


def test_migration_moves_existing_files_out_of_the_media_tree(settings):
    # given a job whose file was stored the old way, public and guessable, and a stale preview upload
    from django.apps import apps
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from tests.factories import StaffFactory

    migration = importlib.import_module("marketplace.transfers.migrations.0003_private_files")
    job = TransferJob.objects.create(kind="import", resource="catalog.listing", actor=StaffFactory(), file_format="csv")
    old = default_storage.save(f"transfers/2026/11/import-{job.pk}.csv", ContentFile(b"title\nx\n"))
    upload = default_storage.save("django-import-export/abc123", ContentFile(b"title\ny\n"))
    TransferJob.objects.filter(pk=job.pk).update(file=old)
    # when the migration's data step runs
    migration.move_files_to_private_storage(apps, None)
    # then the file is in the private storage under a random name, and nothing is left in media
    job.refresh_from_db()
    assert TOKEN_NAME.match(job.file.name) and job.file.name.startswith("transfers/2026/11/"), job.file.name
    assert job.file.read() == b"title\nx\n"
    assert not under_media(settings, job.file.path)
    assert not default_storage.exists(old) and not default_storage.exists(upload)
