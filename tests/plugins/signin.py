"""Test support for throttled sign-in (django-axes): fixtures and hooks.

Axes keeps its attempts as database rows (and the password-reset counts in the "signin" database
cache), so each test's rollback already starts the next one with clean counters.
"""

import pytest
from django.test.client import ClientMixin, RequestFactory


@pytest.fixture(autouse=True)
def signin_client_login_carries_a_request(monkeypatch):
    """Let `client.login(...)` authenticate through axes like a real sign-in.

    Django's test Client calls `authenticate(**credentials)` without a request, which
    AxesStandaloneBackend refuses (it counts attempts per client IP). The patched login passes the
    request the client would have sent (its REMOTE_ADDR and headers), so the throttle applies to
    test sign-ins as it does to real ones: it is not switched off.
    """
    login, alogin = ClientMixin.login, ClientMixin.alogin

    def request_for(client):
        return RequestFactory(**client.defaults).post("/admin/login/")

    def login_with_request(self, **credentials):
        credentials.setdefault("request", request_for(self))
        return login(self, **credentials)

    async def alogin_with_request(self, **credentials):
        credentials.setdefault("request", request_for(self))
        return await alogin(self, **credentials)

    monkeypatch.setattr(ClientMixin, "login", login_with_request)
    monkeypatch.setattr(ClientMixin, "alogin", alogin_with_request)
