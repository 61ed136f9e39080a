// deploybot's dashboard: the deployments list (live), a deployment's page (steps, live
// progress and log, services, requests, rollback/cancel) and an application's page.
// Plain DOM, hash routes; everything comes from the GraphQL API the token may read.
"use strict";

const STATES = ["QUEUED", "PENDING", "IN_PROGRESS", "SUCCESS", "FAILURE", "ERROR", "ROLLED_BACK", "CANCELLED", "INACTIVE"];
const FINAL = new Set(["SUCCESS", "FAILURE", "ERROR", "ROLLED_BACK", "CANCELLED", "INACTIVE"]);
const ROW = "id number environment application state version trigger createdAt duration";
let stops = [];

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) el.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function seconds(value) {
  return value === null || value === undefined ? "" : value.toFixed(1) + " s";
}

function stateCell(state) {
  return h("span", { class: "state " + state, "data-state": state }, state);
}

function notice(text) {
  const el = document.getElementById("notice");
  el.textContent = text || "";
  el.hidden = !text;
}

function fail(err) {
  notice(err.code === "UNAUTHENTICATED" ? "Sign in with an API token to see deployments." : err.message);
}

// --- the deployments list --------------------------------------------------------------------

function filterFrom(params) {
  const filter = {};
  if (params.get("environment")) filter.environments = [params.get("environment")];
  if (params.get("application")) filter.applications = [params.get("application")];
  if (params.get("state")) filter.states = [params.get("state")];
  return filter;
}

function deploymentRow(d) {
  return h("tr", { "data-id": d.id },
    h("td", {}, h("a", { href: "#/deployment/" + encodeURIComponent(d.id) }, "#" + d.number)),
    h("td", {}, h("a", { href: "#/application/" + encodeURIComponent(d.environment) + "/" + encodeURIComponent(d.application) }, d.application)),
    h("td", {}, d.environment), h("td", {}, stateCell(d.state)), h("td", {}, d.version || ""),
    h("td", {}, d.trigger), h("td", {}, when(d.createdAt)), h("td", {}, seconds(d.duration)));
}

async function listPage(params) {
  const filter = filterFrom(params);
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const name of ["environment", "application", "state"]) if (form.elements[name].value) q.set(name, form.elements[name].value);
    window.location.hash = "#/?" + q.toString();
  } },
    h("input", { name: "environment", placeholder: "environment", value: params.get("environment") || "" }),
    h("input", { name: "application", placeholder: "application", value: params.get("application") || "" }),
    h("select", { name: "state" }, h("option", { value: "" }, "any state"),
      STATES.map((s) => h("option", { value: s, selected: params.get("state") === s ? "selected" : null }, s))),
    h("button", { type: "submit" }, "Filter"));
  const count = h("span", { class: "muted", id: "count" });
  const body = h("tbody", { id: "deployments" });
  const more = h("button", { type: "button", hidden: true }, "Older");
  render(h("h1", {}, "Deployments ", count), form,
    h("table", {}, h("thead", {}, h("tr", {}, ["#", "Application", "Environment", "State", "Version", "Trigger", "Created", "Duration"].map((t) => h("th", {}, t)))), body), more);

  let after = null;
  async function load() {
    const data = await api.query(`query List($first: Int!, $after: String, $filter: DeploymentFilter) {
      deployments(first: $first, after: $after, filter: $filter) { totalCount pageInfo { hasNextPage endCursor } nodes { ${ROW} } } }`,
      { first: 50, after, filter });
    const page = data.deployments;
    count.textContent = "(" + page.totalCount + ")";
    page.nodes.forEach((d) => body.append(deploymentRow(d)));
    after = page.pageInfo.endCursor;
    more.hidden = !page.pageInfo.hasNextPage;
  }
  more.addEventListener("click", () => load().catch(fail));
  try {
    await load();
  } catch (err) {
    return fail(err);
  }
  stops.push(api.subscribe(`subscription Events($filter: DeploymentFilter) { deploymentEvents(filter: $filter) { kind state deployment { ${ROW} } } }`,
    { filter }, {
      next(data) {
        if (!data) return;
        const d = data.deploymentEvents.deployment;
        const row = deploymentRow({ ...d, state: data.deploymentEvents.state });
        const old = body.querySelector(`tr[data-id="${CSS.escape(d.id)}"]`);
        if (old) old.replaceWith(row);
        else {
          row.classList.add("fresh");
          body.prepend(row);
        }
      },
      error: fail,
    }));
}

// --- a deployment's page ---------------------------------------------------------------------

const DETAIL = `query Detail($id: ID!) { deployment(id: $id) {
  ${ROW} repositoryUrl ref commitSha commitMessage description actor provider stackFile image service
  errorCode errorMessage startedAt finishedAt originalRequest mappedRequest logsUrl
  steps { name status message error startedAt finishedAt duration }
  services { service swarmName image digest version replicasDesired replicasRunning state error } } }`;

function stepsTable(steps) {
  return h("table", { id: "steps" }, h("thead", {}, h("tr", {}, ["Step", "Status", "Started", "Duration", "Message"].map((t) => h("th", {}, t)))),
    h("tbody", {}, steps.map((s) => h("tr", {}, h("td", {}, s.name), h("td", {}, stateCell(s.status)), h("td", {}, when(s.startedAt)),
      h("td", {}, seconds(s.duration)), h("td", {}, s.error || s.message || "")))));
}

function servicesTable(services) {
  return h("table", { id: "services" }, h("thead", {}, h("tr", {}, ["Service", "Image", "Digest", "Replicas", "State"].map((t) => h("th", {}, t)))),
    h("tbody", {}, services.map((s) => h("tr", {}, h("td", {}, s.swarmName || s.service), h("td", {}, s.image || ""),
      h("td", {}, (s.digest || "").slice(0, 19)), h("td", {}, `${s.replicasRunning ?? "?"}/${s.replicasDesired ?? "?"}`), h("td", {}, s.error || s.state || "")))));
}

// Whether the signed-in token may deploy (roll back, cancel) this application.
async function mayDeploy(application) {
  try {
    const data = await api.query(`query May($app: String) { viewer { may(action: DEPLOY, application: $app) } }`, { app: application });
    return data.viewer.may;
  } catch (err) {
    return false;
  }
}

async function mutate(kind, input, out) {
  const field = kind === "cancel" ? "cancelDeployment" : "rollback";
  const type = kind === "cancel" ? "CancelDeploymentInput" : "RollbackInput";
  try {
    const data = await api.query(`mutation Act($input: ${type}!) { ${field}(input: $input) { deployment { id number } userErrors { code message } } }`, { input });
    const result = data[field];
    if (result.userErrors.length) out.textContent = result.userErrors.map((e) => `${e.code}: ${e.message}`).join("; ");
    else window.location.hash = "#/deployment/" + encodeURIComponent(result.deployment.id);
  } catch (err) {
    out.textContent = err.message;
  }
}

async function deploymentPage(id) {
  let d;
  try {
    d = (await api.query(DETAIL, { id })).deployment;
  } catch (err) {
    return fail(err);
  }
  if (!d) return render(h("h1", {}, "Deployment not found"));
  const bar = h("div", { id: "progressbar" });
  const progressText = h("span", { id: "progresstext", class: "muted" });
  const log = h("pre", { id: "log" });
  const out = h("span", { class: "muted", id: "actionresult" });
  const state = stateCell(d.state);
  const actions = h("div", { class: "actions", hidden: true },
    h("button", { type: "button", id: "cancel", onclick: () => mutate("cancel", { id: d.id }, out) }, "Cancel"),
    h("button", { type: "button", id: "rollback", onclick: () => mutate("rollback", { application: d.application, environment: d.environment }, out) }, "Roll back application"),
    out);
  mayDeploy(d.application).then((may) => {
    actions.hidden = !may;
    actions.dataset.checked = "true";
  });
  render(h("h1", {}, `${d.application} #${d.number} `, state),
    h("dl", {}, [["Environment", d.environment], ["Version", d.version], ["Repository", d.repositoryUrl], ["Ref", d.ref], ["Commit", d.commitSha],
      ["Message", d.commitMessage], ["Image", d.image], ["Stack file", d.stackFile], ["Trigger", d.trigger], ["Actor", d.actor],
      ["Created", when(d.createdAt)], ["Duration", seconds(d.duration)], ["Error", d.errorCode ? `${d.errorCode}: ${d.errorMessage}` : null]]
      .filter(([, v]) => v).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    actions,
    h("h2", {}, "Progress"), h("div", { class: "progress" }, bar), progressText,
    h("h2", {}, "Steps"), stepsTable(d.steps),
    h("h2", {}, "Services"), servicesTable(d.services),
    h("h2", {}, "Log ", h("a", { href: d.logsUrl }, "raw")), log,
    h("h2", {}, "Original request"), h("pre", { class: "json" }, JSON.stringify(d.originalRequest, null, 2)),
    h("h2", {}, "Mapped request"), h("pre", { class: "json" }, JSON.stringify(d.mappedRequest, null, 2)));

  stops.push(api.subscribe(`subscription P($id: ID!) { deploymentProgress(id: $id) { state step status message percentage } }`, { id }, {
    next(data) {
      if (!data) return;
      const p = data.deploymentProgress;
      bar.style.width = p.percentage + "%";
      progressText.textContent = ` ${p.percentage}% · ${p.step || ""} ${p.message}`;
      state.className = "state " + p.state;
      state.textContent = p.state;
      state.dataset.state = p.state;
    },
    complete() {
      if (FINAL.has(state.dataset.state)) refreshSteps(id);
    },
  }));
  followLog(id, log, 0);
}

async function refreshSteps(id) {
  try {
    const d = (await api.query(DETAIL, { id })).deployment;
    document.getElementById("steps").replaceWith(stepsTable(d.steps));
    document.getElementById("services").replaceWith(servicesTable(d.services));
  } catch (err) {
    fail(err);
  }
}

// Lines after `after`, live; a dropped socket resumes from the last sequence shown.
function followLog(id, log, after) {
  let last = after;
  stops.push(api.subscribe(`subscription L($id: ID!, $after: Int) { deploymentLogs(id: $id, after: $after) { lastSequence lines { sequence text } } }`, { id, after }, {
    next(data) {
      if (!data) return;
      const chunk = data.deploymentLogs;
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(chunk.lines.map((l) => l.text).join("\n") + "\n");
      last = chunk.lastSequence;
      log.dataset.lastSequence = String(last);
      if (atEnd) log.scrollTop = log.scrollHeight;
    },
    closed() {
      if (document.body.contains(log)) setTimeout(() => followLog(id, log, last), 1000);
    },
  }));
}

// --- an application's page -------------------------------------------------------------------

async function applicationPage(environment, name) {
  let app;
  try {
    app = (await api.query(`query App($name: String!, $environment: String) { application(name: $name, environment: $environment) {
      name environment state health currentVersion repositoryUrl stackFile lastUpdated replicas { desired running ready }
      healthReport { overall message components { name swarmName status message image replicas { desired running ready } } }
      currentDeployment { id number } } }`, { name, environment })).application;
  } catch (err) {
    return fail(err);
  }
  if (!app) return render(h("h1", {}, "Application not found"));
  const out = h("span", { class: "muted", id: "actionresult" });
  const rollback = h("button", { type: "button", id: "rollback", hidden: true, onclick: () => mutate("rollback", { application: app.name, environment: app.environment }, out) }, "Roll back");
  mayDeploy(app.name).then((may) => {
    rollback.hidden = !may;
    rollback.dataset.checked = "true";
  });
  render(h("h1", {}, `${app.name} `, stateCell(app.state)),
    h("dl", {}, [["Environment", app.environment], ["Health", app.health], ["Current version", app.currentVersion],
      ["Replicas", `${app.replicas.running}/${app.replicas.desired} (${app.replicas.ready} ready)`], ["Repository", app.repositoryUrl],
      ["Last updated", when(app.lastUpdated)]].filter(([, v]) => v).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("div", { class: "actions" }, app.currentDeployment ? h("a", { href: "#/deployment/" + encodeURIComponent(app.currentDeployment.id) }, `current deployment #${app.currentDeployment.number}`) : null,
      rollback, out),
    h("h2", {}, "Health: " + app.healthReport.overall), h("p", {}, app.healthReport.message),
    h("table", {}, h("thead", {}, h("tr", {}, ["Service", "Status", "Image", "Replicas", "Message"].map((t) => h("th", {}, t)))),
      h("tbody", {}, app.healthReport.components.map((c) => h("tr", {}, h("td", {}, c.swarmName), h("td", {}, c.status), h("td", {}, c.image || ""),
        h("td", {}, `${c.replicas.running}/${c.replicas.desired}`), h("td", {}, c.message))))),
    h("p", {}, h("a", { href: "#/?application=" + encodeURIComponent(app.name) + "&environment=" + encodeURIComponent(app.environment) }, "deployments of this application")));
}

// --- routing ---------------------------------------------------------------------------------

function render(...children) {
  document.getElementById("main").replaceChildren(...children.flat());
}

function route() {
  stops.forEach((stop) => stop());
  stops = [];
  notice("");
  const hash = window.location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "deployment" && parts[1]) return deploymentPage(parts[1]);
  if (parts[0] === "application" && parts[2]) return applicationPage(parts[1], parts[2]);
  return listPage(new URLSearchParams(query || ""));
}

document.getElementById("token").value = api.token();
document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  api.setToken(document.getElementById("token").value.trim());
  if (api.socket) api.socket.close();
  route();
});
document.getElementById("logout").addEventListener("click", () => {
  api.setToken("");
  document.getElementById("token").value = "";
  if (api.socket) api.socket.close();
  route();
});
window.addEventListener("hashchange", route);
route();
