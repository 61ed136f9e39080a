// The dashboard's GraphQL client: queries and mutations over HTTP, subscriptions over one
// graphql-transport-ws socket (the protocol of the npm graphql-ws client), the API token on
// both. Kept dependency-free so every byte is served by deploybot.
"use strict";

const TOKEN_KEY = "deploybot.token";

const api = {
  token() {
    return window.localStorage.getItem(TOKEN_KEY) || "";
  },

  setToken(value) {
    if (value) window.localStorage.setItem(TOKEN_KEY, value);
    else window.localStorage.removeItem(TOKEN_KEY);
  },

  async query(query, variables) {
    const headers = { "Content-Type": "application/json" };
    if (api.token()) headers.Authorization = "Bearer " + api.token();
    const response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables: variables || {} }),
    });
    let body;
    try {
      body = await response.json();
    } catch (err) {
      throw new Error("HTTP " + response.status);
    }
    if (body.errors && body.errors.length) {
      const error = new Error(body.errors.map((e) => e.message).join("; "));
      error.code = (body.errors[0].extensions || {}).code;
      throw error;
    }
    if (!response.ok) throw new Error((body.error && body.error.message) || "HTTP " + response.status);
    return body.data;
  },

  socket: null,
  nextId: 1,
  operations: new Map(),

  connect() {
    if (api.socket) return api.socket;
    const ws = new WebSocket(window.location.origin.replace(/^http/, "ws") + "/graphql", "graphql-transport-ws");
    api.socket = ws;
    ws.ready = new Promise((resolve) => {
      ws.onopen = () => {
        const payload = api.token() ? { authorization: "Bearer " + api.token() } : {};
        ws.send(JSON.stringify({ type: "connection_init", payload }));
      };
      ws.onmessage = (event) => {
        const message = JSON.parse(event.data);
        const op = api.operations.get(message.id);
        if (message.type === "connection_ack") resolve();
        else if (message.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
        else if (message.type === "next" && op) op.next(message.payload);
        else if (message.type === "error" && op) {
          api.operations.delete(message.id);
          op.error(new Error(message.payload.map((e) => e.message).join("; ")));
        } else if (message.type === "complete" && op) {
          api.operations.delete(message.id);
          op.complete();
        }
      };
    });
    ws.onclose = (event) => {
      api.socket = null;
      const ops = [...api.operations.values()];
      api.operations.clear();
      ops.forEach((op) => op.closed(event));
    };
    return ws;
  },

  // Subscribe; returns a function that stops the subscription. `closed` is told when the
  // socket went away (the caller decides whether to resubscribe, e.g. from the last sequence).
  subscribe(query, variables, handlers) {
    const id = String(api.nextId++);
    const op = {
      next: (payload) => handlers.next(payload.data, payload.errors),
      error: handlers.error || ((err) => console.error(err)),
      complete: handlers.complete || (() => {}),
      closed: handlers.closed || (() => {}),
    };
    api.operations.set(id, op);
    const ws = api.connect();
    ws.ready.then(() => {
      if (api.operations.has(id)) {
        ws.send(JSON.stringify({ id, type: "subscribe", payload: { query, variables: variables || {} } }));
      }
    });
    return () => {
      if (api.operations.delete(id) && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ id, type: "complete" }));
      }
    };
  },
};
