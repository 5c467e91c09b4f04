"""Outbound: message envelopes, gateway signing and the HTTP transport to the centre."""
