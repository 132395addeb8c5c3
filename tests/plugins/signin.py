"""Test support for throttled sign-in (django-axes): fixtures and hooks."""
