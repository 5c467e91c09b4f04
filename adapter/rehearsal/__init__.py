"""Rehearsal: the simulated centre, a sample HIS, sample catalogues and the demo. Nothing on the
production path imports this package."""
