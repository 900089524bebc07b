"""mar audit commands (registered by cli.main)."""
