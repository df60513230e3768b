"""pytest plugin: fail a test when the event loop was blocked (being written)."""
