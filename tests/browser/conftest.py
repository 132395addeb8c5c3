"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium) headless against a live
server on the PostgreSQL test database, and every flow saves screenshots under var/screenshots/.

Playwright's own browser download cannot work on these machines, so the browser is always
`executable_path=/usr/bin/chromium` with the flags that keep it off the network. `.ci/run` installs
the `chromium` Debian package when tests/browser/ has tests.
"""

import os
import re
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "var" / "screenshots"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PASSWORD = "browser-test-pass-1"

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls between
# browser steps are synchronous and safe, so Django's async guard is lifted for these tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, request):
    """A fresh browser context on the live server; `page.shot(name)` saves a full-page screenshot,
    `page.submit(selector)` clicks a submit button and waits for the next page."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    counter = iter(range(1, 100))

    def shot(name: str) -> Path:
        path = SCREENSHOTS / f"{test_name}-{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def submit(selector: str) -> None:
        """Click a form's submit button and wait for the page it leads to (not the one being left)."""
        with page.expect_navigation():
            page.click(selector)

    page.shot = shot
    page.submit = submit
    yield page
    context.close()


@pytest.fixture
def admin_login(page):
    """Log a user in through the real admin login form, then, for a person who needs a second factor
    (superusers, leads, Finance), through the code page with the code of their authenticator (one
    is given to them first if they have none, as force_login does: tests/plugins/second_factor.py)."""

    def login(user):
        from marketplace.accounts.second_factor import second_factor_required
        from tests.plugins.second_factor import authenticator_ensure, totp_code_unused

        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
        device = authenticator_ensure(user) if second_factor_required(user) else None
        page.goto("/admin/login/")
        page.fill("input[name=username]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.press("input[name=password]", "Enter")  # the login form itself (the page has other forms)
        if device is not None:
            page.wait_for_url(re.compile(r".*/admin/second-factor/verify/"))
            page.fill("input[name=code]", totp_code_unused(device))
            page.press("input[name=code]", "Enter")
        try:
            page.wait_for_url(re.compile(r".*/admin/$"))
        except Exception:
            page.shot("login-failed")
            raise AssertionError(
                f"admin login failed for {user.email} at {page.url}: {page.inner_text('body')[:500]}"
            ) from None
        return page

    return login
