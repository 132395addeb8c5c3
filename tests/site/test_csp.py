"""The Content-Security-Policy header on every door (site/config/settings/csp.py), read over HTTP.

tests/browser/test_csp.py proves in Chromium that the pages run under it without a violation."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from marketplace.transfers.models import TransferJob

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
STRICT = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "'unsafe-eval'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'self'"],
}


def policy(response, header: str = "Content-Security-Policy") -> dict[str, list[str]]:
    assert header in response, f"no {header} header"
    directives = [part.split() for part in response[header].split(";") if part.strip()]
    return {name: values for name, *values in directives}


@pytest.mark.parametrize("path", ["/admin/login/", "/admin/", "/", "/no-such-page/"])
def test_operations_admin_and_public_site_get_the_strict_policy(client, path):
    assert policy(client.get(path)) == STRICT


def test_cms_allows_inline_scripts_but_no_eval(client):
    response = client.get("/cms/login/")
    assert response.status_code == 200
    assert policy(response) == {**STRICT, "script-src": ["'self'", "'unsafe-inline'"]}


def test_our_inline_script_carries_the_nonce_of_the_header(client, make_staff):
    # given an export still running: its page reloads itself with an inline script
    agent = make_staff("Operations agent")
    job = TransferJob.objects.create(kind="export", resource="catalog.listing", resource_path="x", actor=agent)
    client.force_login(agent)
    response = client.get(reverse("admin:transfers_transferjob_change", args=[job.pk]))
    assert response.status_code == 200
    script_src = policy(response)["script-src"]
    nonce = re.search(r'<script nonce="([^"]+)">setTimeout', response.content.decode())
    assert nonce, "the reload script has no nonce"
    assert script_src == ["'self'", "'unsafe-eval'", f"'nonce-{nonce.group(1)}'"]


def test_report_only_mode_and_report_uri_come_from_the_environment():
    code = (
        "from django.conf import settings; "
        "print(settings.CONTENT_SECURITY_POLICY); "
        "print(settings.CONTENT_SECURITY_POLICY_REPORT_ONLY['DIRECTIVES']['report-uri'])"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "PYTHONPATH": "site",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": os.environ.get("DATABASE_URL", "sqlite:////tmp/unused.db"),
        "DJANGO_CSP_REPORT_ONLY": "true",
        "DJANGO_CSP_REPORT_URI": "https://reports.example.com/csp",
    }
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["None", "['https://reports.example.com/csp']"]
