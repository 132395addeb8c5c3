"""Sign-in throttling for the staff doors (/admin/, /cms/): apps, backends, middleware and policy.

Imported by base.py before its INSTALLED_APPS, AUTHENTICATION_BACKENDS and MIDDLEWARE, which splice
these lists in.
"""

SIGNIN_APPS: list[str] = []
SIGNIN_BACKENDS: list[str] = []
SIGNIN_MIDDLEWARE: list[str] = []
