"""The simulated centre: the national protocol on loopback, with fault injection.

IT staff rehearse a region plugin against it before going live; ``demo`` and the tests run
the whole flow against it.
"""
