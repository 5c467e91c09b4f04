"""Zhejiang: x-ca-key / HMAC-SM3 gateway, one path per transaction, infver 1.0."""
