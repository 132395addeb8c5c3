"""The user admin's "Reset second factor" button: a lead removes a person's devices, audited."""

from marketplace.accounts import second_factor
from marketplace.core.admin import Step, WorkflowStepsMixin, step_action


def _reset(user, actor, data):
    second_factor.second_factor_reset(user=user, actor=actor, reason=data["reason"])
    return user


class SecondFactorResetMixin(WorkflowStepsMixin):
    """Mixed into UserAdmin: a detail button that opens a confirmation page asking for a reason.

    Offered to holders of `accounts.reset_second_factor` (Operations lead) on anyone's page but
    their own; the service checks the same again (a lead cannot reset their own second factor).
    """

    actions_detail = ["reset_second_factor"]
    # The button shows only when there is something to reset.
    step_offered = {"reset_second_factor": second_factor.second_factor_devices_exist}

    def has_reset_second_factor_permission(self, request, object_id=None) -> bool:
        if not request.user.has_perm(second_factor.RESET_PERMISSION):
            return False
        return object_id is None or str(object_id) != str(request.user.pk)

    reset_second_factor = step_action(
        "reset_second_factor",
        Step(
            title="Reset second factor",
            call=_reset,
            success="{obj}'s authenticator and backup codes are removed: they set up a new one at their next sign-in.",
            reason="required",
            danger=True,
        ),
        icon="phonelink_erase",
        permissions=["reset_second_factor"],
    )
