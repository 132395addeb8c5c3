"""The TOTP second factor for superusers, leads and Finance: apps, middleware and policy.

Imported by base.py before its INSTALLED_APPS and MIDDLEWARE, which splice these lists in (the
middleware right after authentication and the idle-session check). Who needs a second factor is
one rule in code, `marketplace.accounts.second_factor.second_factor_required`.
"""

from config.env import env

SECOND_FACTOR_APPS: list[str] = [
    "django_otp",
    "django_otp.plugins.otp_totp",  # the authenticator app
    "django_otp.plugins.otp_static",  # the ten one-time backup codes
]
SECOND_FACTOR_MIDDLEWARE: list[str] = [
    # Puts `user.otp_device` and `user.is_verified()` on request.user from the session.
    "django_otp.middleware.OTPMiddleware",
    # A person the rule names whose session is not verified reaches only enrolment or verification.
    "marketplace.accounts.second_factor_middleware.SecondFactorMiddleware",
]

# The name authenticator apps show beside the account (the otpauth:// URL's issuer).
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Marketplace operations")
# django-otp's throttling: after n wrong codes in a row a device accepts nothing for
# factor * 2^(n-1) seconds (1, 2, 4, 8 ... s with the default 1), whatever the code.
OTP_TOTP_THROTTLE_FACTOR = env.int("OTP_TOTP_THROTTLE_FACTOR", default=1)
OTP_STATIC_THROTTLE_FACTOR = env.int("OTP_STATIC_THROTTLE_FACTOR", default=1)

# The demo's shared authenticator secret (base32): load_demo_data gives every demo account that needs a
# second factor a device with it. Development only (dev.py sets it); `check --deploy` refuses it
# (marketplace.E005).
MARKETPLACE_DEMO_TOTP_SECRET = env.str("MARKETPLACE_DEMO_TOTP_SECRET", default="")
