"""The exactly-once harness: the daemon as real OS processes killed at random
(:mod:`tests.harness.daemon_process`), a hostile proxy in front of the simulated centre
(:mod:`tests.harness.hostile_proxy`), the centre's ledger and the state database compared with a
fault-free reference run (:mod:`tests.harness.accounting`), and one run put together
(:mod:`tests.harness.scenario`). ``tests/test_exactly_once.py`` runs it."""
