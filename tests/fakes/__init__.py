"""Fakes and builders shared by the tests: one copy each."""
