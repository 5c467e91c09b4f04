"""Hunan: CSB gateway (_api_* headers, HMAC-SHA1), single endpoint."""
