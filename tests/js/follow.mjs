// Follows one application's next deployment with the reference graphql-transport-ws
// client: its events (from QUEUED on), then its logs and progress until they complete.
// Usage: DEPLOYBOT_TOKEN=<token> node follow.mjs <ws-url> <application>; prints "ready",
// then one JSON result. The token goes in connection_init's payload (graphql-ws convention).
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, application] = process.argv.slice(2);
const token = process.env.DEPLOYBOT_TOKEN;
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  lazy: false,
  connectionParams: token ? { authorization: `Bearer ${token}` } : {},
});

function subscribe(query, variables, onNext) {
  return new Promise((resolve, reject) => {
    client.subscribe(
      { query, variables },
      {
        next: (result) => (result.errors ? reject(new Error(JSON.stringify(result.errors))) : onNext(result.data)),
        error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))),
        complete: resolve,
      },
    );
  });
}

const states = [];
const sequences = [];
const progress = [];
let following = null;

const EVENTS = `subscription($apps: [String!]) {
  deploymentEvents(filter: {applications: $apps}) { kind state deployment { id number } }
}`;
const LOGS = `subscription($id: ID!) { deploymentLogs(id: $id) { lastSequence lines { sequence } } }`;
const PROGRESS = `subscription($id: ID!) { deploymentProgress(id: $id) { state step status percentage } }`;

const done = new Promise((resolve, reject) => {
  let ended = false;
  subscribe(EVENTS, { apps: [application] }, (data) => {
    const event = data.deploymentEvents;
    states.push(event.state);
    if (!following) {
      const id = event.deployment.id;
      following = Promise.all([
        subscribe(LOGS, { id }, (d) => d.deploymentLogs.lines.forEach((l) => sequences.push(l.sequence))),
        subscribe(PROGRESS, { id }, (d) => progress.push(d.deploymentProgress)),
      ]);
    }
    if (!ended && !["QUEUED", "IN_PROGRESS"].includes(event.state)) {
      ended = true;
      following.then(resolve, reject);
    }
  }).catch(reject);
});

client.on("connected", () => setTimeout(() => console.log("ready"), 300));
const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(2);
}, 240000);
try {
  await done;
  console.log(JSON.stringify({ states, sequences, progress }));
} finally {
  clearTimeout(timer);
  await client.dispose();
}
process.exit(0);
