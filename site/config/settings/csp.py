"""Content-Security-Policy (django-csp 4): the middleware and the one policy for every door.

Imported by base.py before its MIDDLEWARE, which splices CSP_MIDDLEWARE in after whitenoise.

The operations admin (unfold), the CMS (Wagtail) and the public site share one policy: everything
from this origin, nothing else. Its relaxations, each needed by a third-party admin as it ships
(tests/browser/test_csp.py opens each door and fails on any violation):

- script-src 'unsafe-eval': unfold runs Alpine.js's standard build, which compiles every `x-data`,
  `x-bind` and `x-on` expression with `new Function`. Alpine's CSP build cannot evaluate the template
  literals and assignments unfold's own templates use, so there is no stricter choice short of
  forking unfold's templates. No 'unsafe-inline' for scripts: our one inline script carries the
  request's nonce (`{{ request.csp_nonce }}`); the nonce is in the header only on responses that used it.
- script-src under /cms/ is 'self' 'unsafe-inline' (and no 'unsafe-eval'): Wagtail 8's page editor
  starts its InlinePanel and date-time choosers with inline `<script>` blocks (some inserted later
  by jQuery), rendered by widget templates that never see the request, so a nonce cannot reach them.
  Wagtail needs no eval.
- style-src 'unsafe-inline': unfold writes its theme colours in an inline `<style>` block and uses
  `style="..."` attributes (progress bars, avatars, dropdown sizes), and the public pages keep their
  few rules inline. Styles cannot run code; the cost is CSS-based exfiltration, which the rest of the
  policy (no foreign img, font or connect) also blocks.
- img-src data:: the icons in unfold's and Wagtail's CSS and the QR codes of the second
  factor are data: images.
- frame-ancestors 'self': Wagtail's preview panel frames this origin's own pages.

DJANGO_CSP_REPORT_ONLY=true sends the same policy as Content-Security-Policy-Report-Only (to try a
change on production traffic); DJANGO_CSP_REPORT_URI adds a report-uri for violation reports.
"""

from csp.constants import NONCE, NONE, SELF, UNSAFE_EVAL, UNSAFE_INLINE

from config.env import env

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CONTENT_SECURITY_POLICY_REPORT_ONLY",
    "CSP_MIDDLEWARE",
    "CSP_PATH_DIRECTIVES",
    "WAGTAIL_GRAVATAR_PROVIDER_URL",
]

CSP_MIDDLEWARE: list[str] = ["config.csp_middleware.PathAwareCSPMiddleware"]

# Module-private, not settings: django-csp 4's system check takes CSP_* names for its old format.
_report_only = env.bool("DJANGO_CSP_REPORT_ONLY", default=False)
_report_uri = env.str("DJANGO_CSP_REPORT_URI", default="")

_directives: dict[str, list] = {
    "default-src": [SELF],
    "script-src": [SELF, UNSAFE_EVAL, NONCE],
    "style-src": [SELF, UNSAFE_INLINE],
    "img-src": [SELF, "data:"],
    "object-src": [NONE],
    "base-uri": [SELF],
    "form-action": [SELF],
    "frame-ancestors": [SELF],
}
# Directives replaced under a path prefix (config.csp_middleware.PathAwareCSPMiddleware).
CSP_PATH_DIRECTIVES: dict[str, dict[str, list]] = {
    "/cms/": {"script-src": [SELF, UNSAFE_INLINE]},
}
# Wagtail's admin shows each user's Gravatar: a third-party image (and a hash of every editor's
# email sent to gravatar.com). Off: Wagtail shows its own default avatar from this origin.
WAGTAIL_GRAVATAR_PROVIDER_URL = None

if _report_uri:
    _directives["report-uri"] = [_report_uri]

if _report_only:
    CONTENT_SECURITY_POLICY = None
    CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": _directives}
else:
    CONTENT_SECURITY_POLICY = {"DIRECTIVES": _directives}
    CONTENT_SECURITY_POLICY_REPORT_ONLY = None
