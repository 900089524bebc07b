"""mar transitions commands (registered by cli.main)."""
