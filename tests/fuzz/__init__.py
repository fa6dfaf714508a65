"""Fuzz corpora of hostile inputs (``fuzz.corpus``) and the tests that run them."""
