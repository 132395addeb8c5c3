"""django-csp's middleware with per-path replacements of directives (CSP_PATH_DIRECTIVES).

One policy serves every door; a path prefix may replace single directives when a third-party admin
cannot run under the strict ones (the reasons live beside the setting, in settings/csp.py).
"""

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings


class PathAwareCSPMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request=request, response=response, report_only=report_only)
        for prefix, directives in settings.CSP_PATH_DIRECTIVES.items():
            if request.path_info.startswith(prefix):
                # a view's own replacement (csp_replace) still wins over the path's
                parts.replace = {**directives, **(parts.replace or {})}
                break
        return parts
