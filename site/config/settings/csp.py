"""Content-Security-Policy (django-csp): the middleware and the policy for every door.

Imported by base.py before its MIDDLEWARE, which splices CSP_MIDDLEWARE in after whitenoise.
"""

CSP_MIDDLEWARE: list[str] = []
