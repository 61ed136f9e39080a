"""The event bus: every change the core makes is published here for subscribers."""
