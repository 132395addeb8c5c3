"""The payment gateway interface and the deterministic sandbox that is the default implementation.

Every call carries an idempotency key: calling again with the same key returns the same result
and moves no money twice, which is what makes retries after a crash safe.
"""

import hashlib
import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class GatewayResult:
    ok: bool
    reference: str = ""
    error: str = ""


class PaymentGateway(Protocol):
    def authorize(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str) -> GatewayResult: ...
    def capture(self, *, reference: str, amount: Decimal, idempotency_key: str) -> GatewayResult: ...
    def void(self, *, reference: str, idempotency_key: str) -> GatewayResult: ...
    def refund(self, *, reference: str, amount: Decimal, idempotency_key: str) -> GatewayResult: ...
    def payout(self, *, account: str, amount: Decimal, currency: str, idempotency_key: str) -> GatewayResult: ...


class SandboxGateway:
    """Deterministic and offline. References derive from the idempotency key.

    Failures are switched on three ways: the token `tok_decline` declines authorisations, a payout
    account starting with `acct_fail` fails payouts, and `SandboxGateway.fail_next("capture", 2)` makes
    the next two calls of an operation fail in this process (for tests).
    """

    _lock = threading.Lock()
    _fail: dict[str, int] = {}
    _seen: dict[str, GatewayResult] = {}
    calls: list[tuple[str, str]] = []

    @classmethod
    def fail_next(cls, operation: str, times: int = 1) -> None:
        with cls._lock:
            cls._fail[operation] = cls._fail.get(operation, 0) + times

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls._fail.clear()
            cls._seen.clear()
            cls.calls.clear()

    def _call(self, operation: str, idempotency_key: str, *, declined: bool = False) -> GatewayResult:
        with self._lock:
            self.calls.append((operation, idempotency_key))
            key = f"{operation}:{idempotency_key}"
            if key in self._seen:
                return self._seen[key]
            if self._fail.get(operation, 0) > 0:
                self._fail[operation] -= 1
                return GatewayResult(ok=False, error=f"sandbox: injected {operation} failure")
            if declined:
                result = GatewayResult(ok=False, error=f"sandbox: {operation} declined")
            else:
                digest = hashlib.sha256(key.encode()).hexdigest()[:20]
                result = GatewayResult(ok=True, reference=f"sbx_{operation[:3]}_{digest}")
            self._seen[key] = result
            return result

    def authorize(self, *, token, amount, currency, idempotency_key):
        return self._call("authorize", idempotency_key, declined=token == "tok_decline")

    def capture(self, *, reference, amount, idempotency_key):
        return self._call("capture", idempotency_key)

    def void(self, *, reference, idempotency_key):
        return self._call("void", idempotency_key)

    def refund(self, *, reference, amount, idempotency_key):
        return self._call("refund", idempotency_key)

    def payout(self, *, account, amount, currency, idempotency_key):
        return self._call("payout", idempotency_key, declined=account.startswith("acct_fail"))


@cache
def _gateway_class(path: str):
    return import_string(path)


def get_gateway() -> PaymentGateway:
    return _gateway_class(settings.MARKETPLACE_PAYMENT_GATEWAY)()
