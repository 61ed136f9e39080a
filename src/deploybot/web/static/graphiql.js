// GraphiQL with every asset served by deploybot: queries over HTTP, subscriptions over
// graphql-transport-ws, and the API token (kept in this browser's localStorage, shared
// with the dashboard) sent as `Authorization` on both.
"use strict";

const TOKEN_KEY = "deploybot.token";
const url = window.location.origin + "/graphql";
const wsUrl = url.replace(/^http/, "ws");

function token() {
  return window.localStorage.getItem(TOKEN_KEY) || "";
}

function authHeaders() {
  return token() ? { Authorization: "Bearer " + token() } : {};
}

const form = document.getElementById("tokenbar");
const input = document.getElementById("token");
const state = document.getElementById("tokenstate");
input.value = token();
state.textContent = token() ? "token set" : "no token";
form.addEventListener("submit", (event) => {
  event.preventDefault();
  window.localStorage.setItem(TOKEN_KEY, input.value.trim());
  window.location.reload();
});

const fetcher = GraphiQL.createFetcher({
  url,
  subscriptionUrl: wsUrl,
  headers: authHeaders(),
  wsConnectionParams: token() ? { authorization: "Bearer " + token() } : {},
});

const params = new URLSearchParams(window.location.search);
const DEFAULT_QUERY = `# deploybot: the newest deployments.
query Recent {
  deployments(first: 10) {
    totalCount
    nodes { id number application state version createdAt }
  }
}
`;

function App() {
  const explorer = GraphiQLPluginExplorer.explorerPlugin();
  return React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: params.get("q") || DEFAULT_QUERY,
    defaultHeaders: JSON.stringify(authHeaders(), null, 2),
    shouldPersistHeaders: false,
    plugins: [explorer],
  });
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(App));
