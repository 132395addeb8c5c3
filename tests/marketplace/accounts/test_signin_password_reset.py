"""Password-reset emails at /cms/password_reset/ are limited per address and per client IP
(marketplace.accounts.signin.ThrottledPasswordResetForm); the answer never changes."""

import time

import pytest
from django.core import mail
from django.test import Client, override_settings

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

RESET = "/cms/password_reset/"
DONE = "/cms/password_reset/done/"


def _ask(email: str, ip: str = "192.0.2.50"):
    return Client(REMOTE_ADDR=ip).post(RESET, {"email": email})


def _answer(response) -> tuple:
    return response.status_code, response.get("Location"), response.content


def test_password_reset_sends_three_emails_per_address_then_nothing_with_the_same_answer():
    # given a staff member (the address limit is 3 an hour)
    user = StaffFactory(groups=[])
    # when a reset is asked for their address five times
    answers = [_answer(_ask(user.email, ip=f"192.0.2.{n}")) for n in range(5)]
    # then three emails went out, and every answer was the same redirect to the "check your email" page
    assert [message.to for message in mail.outbox] == [[user.email]] * 3
    assert answers == [(302, DONE, b"")] * 5


def test_password_reset_for_an_unknown_address_answers_the_same_and_sends_nothing():
    # given a known address and one with no account
    user = StaffFactory(groups=[])
    # when a reset is asked for each
    known, unknown = _ask(user.email), _ask("no-such-person@example.com", ip="192.0.2.51")
    # then the answers are the same, and only the known address got an email
    assert _answer(known) == _answer(unknown) == (302, DONE, b"")
    assert [message.to for message in mail.outbox] == [[user.email]]


def test_password_reset_sends_ten_emails_per_ip_then_nothing():
    # given eleven staff members (the IP limit is 10 an hour)
    users = [StaffFactory(groups=[]) for _ in range(11)]
    # when one IP asks a reset for each of them
    answers = {_answer(_ask(user.email, ip="203.0.113.7")) for user in users}
    # then the first ten got an email, the eleventh none, and the answer never changed
    assert [message.to for message in mail.outbox] == [[user.email] for user in users[:10]]
    assert answers == {(302, DONE, b"")}
    # and the eleventh asking from another IP gets their email
    _ask(users[10].email, ip="198.51.100.7")
    assert mail.outbox[-1].to == [users[10].email]


@override_settings(SIGNIN_RESET_WINDOW_SECONDS=1)
def test_password_reset_limit_opens_again_after_the_window():
    # given an address that used up its three emails
    user = StaffFactory(groups=[])
    for _ in range(4):
        _ask(user.email)
    assert len(mail.outbox) == 3
    # when the window has passed
    time.sleep(1.1)
    _ask(user.email)
    # then one more email goes out
    assert len(mail.outbox) == 4
