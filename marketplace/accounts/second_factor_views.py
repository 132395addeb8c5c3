"""The second-factor pages, in the operations admin's sign-in look: enrol, backup codes, verify.

Each page only parses the form, calls one service of marketplace.accounts.second_factor and
presents the result. Passing a code marks the session verified with `django_otp.login` (and gives
the session a new key, as signing in does); `next` brings the person back where they were going.
"""

import io
from urllib.parse import quote

import django_otp
import qrcode
import qrcode.image.svg
from django import forms
from django.contrib import admin
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from unfold.widgets import UnfoldAdminTextInputWidget

from marketplace.accounts.second_factor import (
    BACKUP_CODE_COUNT,
    authenticator_get,
    second_factor_enrolment_confirm,
    second_factor_enrolment_start,
    second_factor_required,
    second_factor_verify,
    secret_base32,
)
from marketplace.core.exceptions import ApplicationError

app_name = "second_factor"
BACKUP_CODES_SESSION_KEY = "_second_factor_backup_codes"


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=UnfoldAdminTextInputWidget(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false", "autocapitalize": "off"}
        ),
    )

    def __init__(self, *args, backup: bool, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["code"]
        if backup:
            field.help_text = "The 6-digit code your authenticator app shows now, or one of your backup codes."
        else:
            field.label = "Code from the app"
            field.help_text = "The 6-digit code your authenticator app shows for this account."
            field.widget.attrs["inputmode"] = "numeric"


def _next(request) -> str:
    """The `next` address if it stays on this site, else the admin's home."""
    url = request.POST.get("next") or request.GET.get("next")
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return reverse("admin:index")


def _next_quoted(request) -> str:
    return quote(_next(request), safe="/")


def _pass(request, device) -> None:
    """Mark this session verified by `device`, under a new session key (as signing in does)."""
    request.session.cycle_key()
    django_otp.login(request, device)


def _qr_svg(text: str) -> str:
    """The QR code of `text` as inline SVG, drawn here: no script and no image request."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    out = io.BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg") :]  # without the XML declaration


def _page(request, template: str, context: dict) -> TemplateResponse:
    context = {
        **admin.site.each_context(request),
        "next": _next(request),
        "logout_url": reverse("admin:logout"),
        **context,
    }
    return TemplateResponse(request, template, context)


def enrol(request):
    """Show a new authenticator's QR code and secret; a code from the app confirms it."""
    user = request.user
    if not second_factor_required(user) or user.is_verified():
        return redirect(_next(request))
    if authenticator_get(user) is not None:
        return redirect(f"{reverse('second_factor:verify')}?{request.GET.urlencode()}")
    form = CodeForm(request.POST or None, backup=False)
    if request.method == "POST" and form.is_valid():
        try:
            enrolment = second_factor_enrolment_confirm(user=user, token=form.cleaned_data["code"])
        except ApplicationError as exc:
            form.add_error("code", exc.message)
        else:
            _pass(request, enrolment.device)
            request.session[BACKUP_CODES_SESSION_KEY] = enrolment.backup_codes
            return redirect(f"{reverse('second_factor:backup_codes')}?next={_next_quoted(request)}")
    try:
        device = second_factor_enrolment_start(user=user)
    except ApplicationError:  # confirmed meanwhile (another tab)
        return redirect(f"{reverse('second_factor:verify')}?next={_next_quoted(request)}")
    secret = secret_base32(device)
    context = {
        "title": "Set up your authenticator",
        "form": form,
        "qr_svg": mark_safe(_qr_svg(device.config_url)),  # noqa: S308 -- SVG drawn by qrcode from our own URL
        "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
        "secret": secret,
    }
    return _page(request, "admin/accounts/second_factor/enrol.html", context)


def backup_codes(request):
    """Show the new backup codes once; afterwards the page sends the person on."""
    codes = request.session.pop(BACKUP_CODES_SESSION_KEY, None)
    if not codes or not request.user.is_verified():
        return redirect(_next(request))
    return _page(
        request,
        "admin/accounts/second_factor/backup_codes.html",
        {"title": "Your backup codes", "codes": codes, "count": BACKUP_CODE_COUNT},
    )


def verify(request):
    """Ask a person with an authenticator for a code (or a backup code) before anything else."""
    user = request.user
    if not second_factor_required(user) or user.is_verified():
        return redirect(_next(request))
    if authenticator_get(user) is None:
        return redirect(f"{reverse('second_factor:enrol')}?next={_next_quoted(request)}")
    form = CodeForm(request.POST or None, backup=True)
    if request.method == "POST" and form.is_valid():
        try:
            device = second_factor_verify(user=user, token=form.cleaned_data["code"])
        except ApplicationError as exc:
            form.add_error("code", exc.message)
        else:
            _pass(request, device)
            return redirect(_next(request))
    return _page(request, "admin/accounts/second_factor/verify.html", {"title": "Enter your code", "form": form})


urlpatterns = [
    path("enrol/", admin.site.admin_view(enrol), name="enrol"),
    path("backup-codes/", admin.site.admin_view(backup_codes), name="backup_codes"),
    path("verify/", admin.site.admin_view(verify), name="verify"),
]
