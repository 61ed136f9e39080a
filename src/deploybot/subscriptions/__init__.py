"""Live GraphQL: subscriptions over WebSocket, shared by every subscriber of a feed."""
