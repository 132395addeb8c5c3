"""Email backends for the outbox tests."""

from django.core.mail.backends.locmem import EmailBackend


class SmtpDown(Exception):
    pass


class FlakyBackend(EmailBackend):
    """The locmem backend that fails the next `failures_left` sends (-1: every send)."""

    failures_left = 0

    def send_messages(self, messages):
        if FlakyBackend.failures_left:
            if FlakyBackend.failures_left > 0:
                FlakyBackend.failures_left -= 1
            raise SmtpDown("421 Service not available")
        return super().send_messages(messages)
