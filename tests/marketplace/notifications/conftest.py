import pytest

from tests.marketplace.notifications.backends import FlakyBackend


@pytest.fixture
def flaky_email(settings):
    """Sends go through FlakyBackend; set `.failures_left` to make the next sends fail."""
    settings.EMAIL_BACKEND = "tests.marketplace.notifications.backends.FlakyBackend"
    FlakyBackend.failures_left = 0
    yield FlakyBackend
    FlakyBackend.failures_left = 0


@pytest.fixture
def file_email(settings, tmp_path):
    """Sends are written into a fresh folder, so sends from forked processes can be counted too.

    `sent()` lists the recipients of the messages written. It counts Message-ID headers, not files:
    two forked children share their memory layout, so the backend's file names (a timestamp to the
    second and the backend's id()) can coincide, and then both messages land in one file.
    """
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)

    def sent() -> list[str]:
        recipients = []
        for path in sorted(tmp_path.iterdir()):
            lines = path.read_text().splitlines()
            assert sum(line.startswith("Message-ID:") for line in lines) == sum(
                line.startswith("To:") for line in lines
            )
            recipients += [line.removeprefix("To:").strip() for line in lines if line.startswith("To:")]
        return sorted(recipients)

    return sent
