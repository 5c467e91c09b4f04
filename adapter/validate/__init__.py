"""Validate: check records against formats and rules before anything leaves."""
