"""Sign-in throttling for the staff doors (/admin/, /cms/): apps, backends, middleware and policy.

Imported by base.py before its INSTALLED_APPS, AUTHENTICATION_BACKENDS and MIDDLEWARE, which splice
these lists in; base.py star-imports the rest.

The lockout policy (django-axes, attempts kept as database rows, so every web process sees them):

- Failed sign-ins are counted per (account, client IP) and per client IP, at /admin/login/ and
  /cms/login/ alike, whether the account exists or not (the typed address is the key).
- An (account, IP) pair is locked after SIGNIN_FAILURE_LIMIT failures (5); a client IP is locked
  for every account after SIGNIN_IP_FAILURE_LIMIT failures across accounts (50).
- A lock ends SIGNIN_COOLOFF_MINUTES (15) after the failure that set it. Attempts made while locked
  are answered with the lockout page and not counted, so they neither extend the lock nor show
  whether the password was right.
- No lock is ever per account alone: the right password from another IP still signs in, so an
  attacker cannot keep a real person out. The price is that a spread-out attacker gets
  SIGNIN_FAILURE_LIMIT guesses per account per IP per cool-off; strong passwords and the second
  factor cover that.
- A successful sign-in does not clear the counters (clearing by IP would let an attacker who owns
  one account reset its IP's count at will); they age out after the cool-off.
- Locked and throttled answers are the same for existing and missing accounts: HTTP 429 and one
  page. A lead clears a lock early in the admin (Axes, Access attempts) or with
  `manage.py axes_reset_username` / `axes_reset_ip`.
- The client IP is REMOTE_ADDR. Behind a proxy, set SIGNIN_CLIENT_IP_HEADER to the header the proxy
  sets (e.g. HTTP_X_FORWARDED_FOR) and SIGNIN_TRUSTED_PROXY_COUNT to the number of proxies that
  append to it; any other header a client sends is ignored.
- Password-reset emails (/cms/password_reset/): at most SIGNIN_RESET_PER_ADDRESS (3) per address
  and SIGNIN_RESET_PER_IP (10) per client IP in SIGNIN_RESET_WINDOW_SECONDS (1 hour). Past the
  limit nothing is sent and the answer is the usual "check your email" page. The counts live in
  the "signin" cache: Redis when REDIS_URL is set, else a database cache table (created by the
  accounts migrations), so the limit holds across web processes without a Redis server.
"""

from datetime import timedelta

from config.env import env
from config.settings import q as _q

SIGNIN_APPS: list[str] = ["axes"]
# AxesStandaloneBackend first: it refuses a locked-out attempt before any password is checked.
SIGNIN_BACKENDS: list[str] = ["axes.backends.AxesStandaloneBackend"]
# Last: it turns the lockout flag set during authentication into the lockout page.
SIGNIN_MIDDLEWARE: list[str] = ["axes.middleware.AxesMiddleware"]

SIGNIN_FAILURE_LIMIT = env.int("SIGNIN_FAILURE_LIMIT", default=5)
SIGNIN_IP_FAILURE_LIMIT = env.int("SIGNIN_IP_FAILURE_LIMIT", default=50)
SIGNIN_COOLOFF_MINUTES = env.int("SIGNIN_COOLOFF_MINUTES", default=15)
SIGNIN_CLIENT_IP_HEADER = env.str("SIGNIN_CLIENT_IP_HEADER", default="")
SIGNIN_TRUSTED_PROXY_COUNT = env.int("SIGNIN_TRUSTED_PROXY_COUNT", default=1)

AXES_HANDLER = "marketplace.accounts.signin.SigninAttemptHandler"
# Both lockout parameters are counted; SigninAttemptHandler applies the pair limit to the first
# and SIGNIN_IP_FAILURE_LIMIT to the second (axes itself has one limit for all parameters).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_FAILURE_LIMIT = SIGNIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=SIGNIN_COOLOFF_MINUTES)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
AXES_USERNAME_FORM_FIELD = "username"  # both doors' login forms post `username` (the email)
AXES_USERNAME_CALLABLE = "marketplace.accounts.signin.signin_username"
AXES_CLIENT_IP_CALLABLE = "marketplace.accounts.signin.client_ip"
AXES_LOCKOUT_CALLABLE = "marketplace.accounts.signin.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# Axes's default AXES_SENSITIVE_PARAMETERS stays: log lines and the stored form data mask the
# address and the IP (the password is always masked); the attempt rows' own columns keep them.
AXES_VERBOSE = False
# The attempt lists are registered in unfold's look by marketplace.accounts.signin_admin.
AXES_ENABLE_ADMIN = False

# --- Password-reset emails ---------------------------------------------------------------
SIGNIN_RESET_PER_ADDRESS = env.int("SIGNIN_RESET_PER_ADDRESS", default=3)
SIGNIN_RESET_PER_IP = env.int("SIGNIN_RESET_PER_IP", default=10)
SIGNIN_RESET_WINDOW_SECONDS = env.int("SIGNIN_RESET_WINDOW_SECONDS", default=60 * 60)
SIGNIN_CACHE_TABLE = "signin_throttle_cache"
WAGTAILADMIN_USER_PASSWORD_RESET_FORM = "marketplace.accounts.signin.ThrottledPasswordResetForm"
# The default cache stays what q.py chose (Redis with REDIS_URL, else Django's per-process default).
CACHES = {
    **getattr(_q, "CACHES", {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}),
    "signin": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _q.REDIS_URL, "KEY_PREFIX": "signin"}
        if _q.REDIS_URL
        else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": SIGNIN_CACHE_TABLE}
    ),
}
