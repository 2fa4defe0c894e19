"""Shared test fakes and builders: imported by test modules, never collected."""
