"""Deployment checks (marketplace/core/checks.py) that need no fresh interpreter; the rest run
through `manage.py check --deploy` in tests/site/test_settings.py."""

from django.core.checks import Error
from django.test import override_settings

from marketplace.core.checks import payment_gateway_is_real, private_files_are_not_public
from marketplace.payments.gateway import SandboxGateway

PRIVATE = "marketplace.core.storage.PrivateFileSystemStorage"
STATICFILES = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}


class WrappedSandbox(SandboxGateway):
    """A subclass of the sandbox is still the sandbox."""


def _storages(**extra):
    return {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}, "staticfiles": STATICFILES, **extra}


def test_private_files_check_passes_without_a_private_storage(tmp_path):
    with override_settings(MEDIA_ROOT=str(tmp_path), STORAGES=_storages()):
        assert private_files_are_not_public(None) == []


def test_private_files_check_passes_with_a_private_root_beside_media(tmp_path):
    private = {"BACKEND": PRIVATE, "OPTIONS": {"location": str(tmp_path / "private")}}
    with override_settings(MEDIA_ROOT=str(tmp_path / "media"), STORAGES=_storages(private=private)):
        assert private_files_are_not_public(None) == []


def test_private_files_check_fails_when_the_private_root_is_media_or_inside_it(tmp_path):
    for location in (tmp_path, tmp_path / "private", None):
        options = {"location": str(location)} if location else {}  # no location: FileSystemStorage uses MEDIA_ROOT
        private = {"BACKEND": PRIVATE, "OPTIONS": options}
        with override_settings(MEDIA_ROOT=str(tmp_path), STORAGES=_storages(private=private)):
            errors = private_files_are_not_public(None)
        assert [type(e) for e in errors] == [Error], location
        assert errors[0].id == "marketplace.E004" and "MEDIA_ROOT" in errors[0].msg


def test_private_files_check_ignores_object_storage(tmp_path):
    private = {"BACKEND": "django.core.files.storage.InMemoryStorage"}
    with override_settings(MEDIA_ROOT=str(tmp_path), STORAGES=_storages(private=private)):
        assert private_files_are_not_public(None) == []


def test_payment_gateway_check_refuses_the_sandbox_and_its_subclasses():
    for path in ("marketplace.payments.gateway.SandboxGateway", "tests.marketplace.core.test_checks.WrappedSandbox"):
        with override_settings(MARKETPLACE_PAYMENT_GATEWAY=path):
            errors = payment_gateway_is_real(None)
        assert [e.id for e in errors] == ["marketplace.E002"], path


def test_payment_gateway_check_refuses_a_path_that_does_not_import():
    with override_settings(MARKETPLACE_PAYMENT_GATEWAY="marketplace.payments.gateway.NoSuchGateway"):
        assert [e.id for e in payment_gateway_is_real(None)] == ["marketplace.E002"]


def test_payment_gateway_check_accepts_another_gateway():
    with override_settings(MARKETPLACE_PAYMENT_GATEWAY="tests.site.gateways.UnreachableGateway"):
        assert payment_gateway_is_real(None) == []
