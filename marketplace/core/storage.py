"""The private file storage: files that no web server serves (imports, exports, import previews).

`STORAGES["private"]` (and `STORAGES["import_export"]`, where django-import-export keeps an upload
awaiting confirmation) use `PrivateFileSystemStorage`, rooted at PRIVATE_ROOT, outside MEDIA_ROOT.
Its files have no URL: they are read only through a view that checks the requester's scope and
writes an audit event. In production the same aliases may point at a private object-storage bucket.
"""

import secrets

from django.core.files.storage import FileSystemStorage, storages


class PrivateFileSystemStorage(FileSystemStorage):
    """A FileSystemStorage without public URLs."""

    def url(self, name):
        raise ValueError("A private file has no public URL: link to the view that serves it.")


def private_storage():
    """The "private" storage (a callable, so a FileField's migration does not freeze its settings)."""
    return storages["private"]


def private_token() -> str:
    """An unguessable part for a private file's name (128 random bits)."""
    return secrets.token_urlsafe(16)
