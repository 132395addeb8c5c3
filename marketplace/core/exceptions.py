"""The error hierarchy of the domain, mapped once to admin messages and API responses."""


class ApplicationError(Exception):
    """A business rule refused the request. The message is safe to show to the user."""

    def __init__(self, message: str, *, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class TransitionNotAllowed(ApplicationError):
    """A state machine refused a transition (admin message, API 409)."""

    def __init__(self, obj, transition: str, *, state: str | None = None, detail: str = ""):
        state = state if state is not None else getattr(obj, "status", "?")
        label = f"{obj._meta.verbose_name.capitalize()} #{obj.pk}" if getattr(obj, "pk", None) else str(obj)
        message = f"{label} is '{state}': cannot {transition}."
        if detail:
            message = f"{message} {detail}"
        super().__init__(message, extra={"object": label, "state": state, "transition": transition})
        self.obj = obj
        self.state = state
        self.transition = transition


class NotPermitted(ApplicationError):
    """The actor may not do this to this object (admin message, API 403)."""


class InvalidInput(ApplicationError):
    """The input breaks a rule that the form or serializer could not see (API 400)."""


class PaymentFailed(ApplicationError):
    """The payment gateway declined or failed; nothing was written."""
