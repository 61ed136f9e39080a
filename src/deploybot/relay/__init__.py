"""The environment relay: one schema over every environment's instance (issue 13)."""
