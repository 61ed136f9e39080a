"""The `deploybot` client commands a CI job runs (deploy --wait, logs -f, status, history,
rollback, cancel): GraphQL over HTTP and WebSocket against a deploybot server, like any
other client. Nothing here imports the server's code."""
