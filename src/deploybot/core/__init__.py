"""Core services: the rules of deploybot, shared by GraphQL, the CLI, webhooks and the runner."""
