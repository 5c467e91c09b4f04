"""The spool: outgoing messages committed before any send, their claims, retries, deliveries
and unknown outcomes, and the visit numbers bound into them."""
