"""The TOTP second factor for superusers, leads and Finance: apps, middleware and policy.

Imported by base.py before its INSTALLED_APPS and MIDDLEWARE, which splice these lists in (the
middleware right after authentication and the idle-session check).
"""

SECOND_FACTOR_APPS: list[str] = []
SECOND_FACTOR_MIDDLEWARE: list[str] = []
