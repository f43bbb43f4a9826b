"""Compose pieces and tools every pattern shares (a package so tests can import starter)."""
