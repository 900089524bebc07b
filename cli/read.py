"""mar read commands (registered by cli.main)."""
