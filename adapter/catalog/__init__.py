"""National catalogues (reference §3.4): downloaded or imported, validated before use, kept
as versions of which one per kind is active."""
