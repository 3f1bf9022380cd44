"""The process: CLI, settings, the app factory (the composition root), logging."""
