"""Thin resolvers: check, call a core service, convert its records to GraphQL types."""
