"""Static file finders that never look outside their folders.

`runserver` (and the live test server) serve /static/ through staticfiles' handler, which asks the
finders for the path as given: `/static/%2e%2e/%2e%2e/manage.py` reached `safe_join`, which raised
SuspiciousFileOperation, a 500 that the handler does not catch. These finders answer "not found"
for a path that climbs out (or is absolute), so the request is a plain 404; whitenoise, which uses
the finders when DEBUG autorefreshes, gets the same answer.
"""

import posixpath

from django.contrib.staticfiles import finders


def climbs_out(path: str) -> bool:
    normal = posixpath.normpath(path.replace("\\", "/"))
    return normal == ".." or normal.startswith("../") or posixpath.isabs(normal)


class FileSystemFinder(finders.FileSystemFinder):
    def find(self, path, *args, **kwargs):
        return [] if climbs_out(path) else super().find(path, *args, **kwargs)


class AppDirectoriesFinder(finders.AppDirectoriesFinder):
    def find(self, path, *args, **kwargs):
        return [] if climbs_out(path) else super().find(path, *args, **kwargs)
