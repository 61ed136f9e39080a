"""The HTTP and WebSocket transports: GraphQL, raw logs, health; each calls the backend."""
