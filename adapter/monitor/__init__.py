"""Monitor: the health of the upload queue."""
