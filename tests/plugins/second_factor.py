"""Test support for the TOTP second factor: what a signed-in staff test client carries."""
