"""The GraphQL documents the client commands send."""

from __future__ import annotations

DEPLOYMENT = """
  id number environment application state trigger version previousVersion
  repositoryUrl ref commitSha image service strategy actor description
  errorCode errorMessage logsUrl duration createdAt startedAt finishedAt
  steps { name status message error startedAt finishedAt duration }
  services { service swarmName image digest version replicasDesired replicasRunning }
"""

USER_ERRORS = "userErrors { field message code }"

DEPLOY = f"""
mutation Deploy($input: DeployInput!) {{
  deploy(input: $input) {{ {USER_ERRORS} deployment {{ {DEPLOYMENT} }} }}
}}
"""

ROLLBACK = f"""
mutation Rollback($input: RollbackInput!) {{
  rollback(input: $input) {{ {USER_ERRORS} deployment {{ {DEPLOYMENT} }} }}
}}
"""

CANCEL = f"""
mutation Cancel($input: CancelDeploymentInput!) {{
  cancelDeployment(input: $input) {{
    {USER_ERRORS} deployment {{ {DEPLOYMENT} cancelRequestedAt }}
  }}
}}
"""

GET_DEPLOYMENT = f"query Deployment($id: ID!) {{ deployment(id: $id) {{ {DEPLOYMENT} }} }}"

LOG_PAGE = """
query Logs($id: ID!, $after: String) {
  deployment(id: $id) {
    id
    logs(first: 100, after: $after) {
      nodes { sequence timestamp source sourceName stream text }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

HISTORY = """
query History($first: Int!, $after: String, $filter: DeploymentFilter) {
  deployments(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id number environment application state trigger version ref commitSha
      actor createdAt finishedAt duration errorCode
    }
  }
}
"""

STATUS = """
query Status($name: String!, $environment: String) {
  application(name: $name, environment: $environment) {
    name environment state health currentVersion repositoryUrl lastUpdated
    replicas { desired running ready updated }
    currentDeployment { id number version finishedAt }
    healthReport {
      overall message
      components { name status message replicas { desired running ready } }
    }
  }
}
"""

PROGRESS = """
subscription Progress($id: ID!) {
  deploymentProgress(id: $id) { state step status message percentage timestamp }
}
"""

LOGS = """
subscription Logs($id: ID!, $after: Int) {
  deploymentLogs(id: $id, after: $after) {
    lastSequence
    lines { sequence timestamp source sourceName stream text }
  }
}
"""
