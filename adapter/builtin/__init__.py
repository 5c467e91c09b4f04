"""Built-in hook implementations, registered like any plugin (after the external ones)."""
