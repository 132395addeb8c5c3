"""A stand-in for the real payment gateway, for the deployment check's test only.

The project ships only the sandbox gateway (the real one belongs to the deployment), and
`check --deploy` refuses the sandbox and its subclasses. To prove the checklist passes once a real
gateway is configured, the test names this importable class: it implements the gateway interface
and refuses every call, so it can never be mistaken for a way to move money.
"""

from decimal import Decimal

from marketplace.payments.gateway import GatewayResult, GatewayUnavailable


class UnreachableGateway:
    """Answers nothing: every call raises GatewayUnavailable, as an unreachable bank would."""

    def _refuse(self, **kwargs) -> GatewayResult:
        raise GatewayUnavailable("tests.site.gateways.UnreachableGateway moves no money.")

    def authorize(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str) -> GatewayResult:
        return self._refuse()

    def capture(self, *, reference: str, amount: Decimal, idempotency_key: str) -> GatewayResult:
        return self._refuse()

    def void(self, *, reference: str, idempotency_key: str) -> GatewayResult:
        return self._refuse()

    def refund(self, *, reference: str, amount: Decimal, idempotency_key: str) -> GatewayResult:
        return self._refuse()

    def payout(self, *, account: str, amount: Decimal, currency: str, idempotency_key: str) -> GatewayResult:
        return self._refuse()
