"""The payment gateway interface and the deterministic sandbox that is the default implementation.

Every call carries an idempotency key: calling again with the same key returns the same result
and moves no money twice, which is what makes retries after a crash safe.
"""

import fcntl
import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class GatewayUnavailable(Exception):
    """The gateway did not answer (timeout, outage): the outcome is unknown. Ask again with the
    same idempotency key; never with a new one, or the money could move twice."""


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

    Failures are switched on four ways: the token `tok_decline` declines authorisations, a payout
    account starting with `acct_fail` fails payouts, `SandboxGateway.fail_next("capture", 2)` makes
    the next two calls of an operation fail, and `SandboxGateway.unavailable_next("payout")` makes
    the next call raise `GatewayUnavailable` without moving money (the last two in this process).

    Like a real gateway it remembers every idempotency key it has answered. By default that memory
    is this process's; with `MARKETPLACE_SANDBOX_BOOK` set to a file path it is a JSON-lines file
    shared by every process, which survives `kill -9` the way the bank's side would: tests read it to
    prove money moved once. `MARKETPLACE_SANDBOX_LATENCY_MS` makes each call take that long.
    """

    _lock = threading.Lock()
    _fail: dict[str, int] = {}
    _unavailable: dict[str, int] = {}
    _seen: dict[str, GatewayResult] = {}
    calls: list[tuple[str, str]] = []

    @classmethod
    def fail_next(cls, operation: str, times: int = 1) -> None:
        with cls._lock:
            cls._fail[operation] = cls._fail.get(operation, 0) + times

    @classmethod
    def unavailable_next(cls, operation: str, times: int = 1) -> None:
        with cls._lock:
            cls._unavailable[operation] = cls._unavailable.get(operation, 0) + times

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls._fail.clear()
            cls._unavailable.clear()
            cls._seen.clear()
            cls.calls.clear()

    @staticmethod
    def read_book(path: str) -> list[dict]:
        """Every answer a shared sandbox book holds, oldest first: {key, ok, reference, error, amount}."""
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def _decide(self, key: str, operation: str, declined: bool) -> GatewayResult:
        if declined:
            return GatewayResult(ok=False, error=f"sandbox: {operation} declined")
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        return GatewayResult(ok=True, reference=f"sbx_{operation[:3]}_{digest}")

    def _call(self, operation: str, idempotency_key: str, *, declined: bool = False, amount=None) -> GatewayResult:
        latency = int(os.environ.get("MARKETPLACE_SANDBOX_LATENCY_MS") or 0)
        if latency:
            time.sleep(latency / 1000)
        key = f"{operation}:{idempotency_key}"
        with self._lock:
            self.calls.append((operation, idempotency_key))
            if self._unavailable.get(operation, 0) > 0:
                self._unavailable[operation] -= 1
                raise GatewayUnavailable(f"sandbox: {operation} timed out")
            if self._fail.get(operation, 0) > 0:
                # An injected failure is not remembered: a retry with the same key may succeed.
                self._fail[operation] -= 1
                return GatewayResult(ok=False, error=f"sandbox: injected {operation} failure")
            book = os.environ.get("MARKETPLACE_SANDBOX_BOOK")
            if book:
                return self._call_shared(book, key, operation, declined, amount)
            if key in self._seen:
                return self._seen[key]
            result = self._decide(key, operation, declined)
            self._seen[key] = result
            return result

    def _call_shared(self, path: str, key: str, operation: str, declined: bool, amount) -> GatewayResult:
        with open(path, "a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                for line in fh:
                    if line.strip() and (row := json.loads(line))["key"] == key:
                        return GatewayResult(ok=row["ok"], reference=row["reference"], error=row["error"])
                result = self._decide(key, operation, declined)
                fh.write(json.dumps({"key": key, **asdict(result), "amount": str(amount)}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                return result
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def authorize(self, *, token, amount, currency, idempotency_key):
        return self._call("authorize", idempotency_key, declined=token == "tok_decline")

    def capture(self, *, reference, amount, idempotency_key):
        return self._call("capture", idempotency_key)

    def void(self, *, reference, idempotency_key):
        return self._call("void", idempotency_key)

    def refund(self, *, reference, amount, idempotency_key):
        return self._call("refund", idempotency_key)

    def payout(self, *, account, amount, currency, idempotency_key):
        return self._call("payout", idempotency_key, declined=account.startswith("acct_fail"), amount=amount)


@cache
def _gateway_class(path: str):
    return import_string(path)


def get_gateway() -> PaymentGateway:
    return _gateway_class(settings.MARKETPLACE_PAYMENT_GATEWAY)()
