"""Guangdong (Shenzhen style): TIF gateway, base URL + infno, enc_type header."""
