// Follows one deployment's log with the reference graphql-transport-ws client until the
// subscription completes. Usage: DEPLOYBOT_TOKEN=<token> node follow-logs.mjs <ws-url> <id>;
// prints "ready" once connected, then one JSON result: {"sequences": [...]}.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, id] = process.argv.slice(2);
const token = process.env.DEPLOYBOT_TOKEN;
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  lazy: false,
  connectionParams: token ? { authorization: `Bearer ${token}` } : {},
});

const LOGS = `subscription($id: ID!) { deploymentLogs(id: $id) { lastSequence lines { sequence } } }`;
const sequences = [];
const done = new Promise((resolve, reject) => {
  client.subscribe(
    { query: LOGS, variables: { id } },
    {
      next: (result) =>
        result.errors
          ? reject(new Error(JSON.stringify(result.errors)))
          : result.data.deploymentLogs.lines.forEach((l) => sequences.push(l.sequence)),
      error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))),
      complete: resolve,
    },
  );
});

client.on("connected", () => console.log("ready"));
const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(2);
}, 120000);
try {
  await done;
  console.log(JSON.stringify({ sequences }));
} finally {
  clearTimeout(timer);
  await client.dispose();
}
process.exit(0);
