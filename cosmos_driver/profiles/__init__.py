"""Model profiles: each owns its spec builder, command line and output conventions."""
