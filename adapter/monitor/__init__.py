"""Monitor: the health of the upload queue, and how the daemon reports it (the ``status``
command, /metrics, /healthz, /readyz, the status page, alerts that start and clear, systemd)."""
