-- Table tests for the Argo CD health checks in examples/argocd. Run from the repository root:
--   lua5.4 tests/lua/argocd_health_test.lua
-- Works under Lua 5.1 too, the dialect of gopher-lua that Argo CD embeds.

local dir = arg[1] or "examples/argocd"

-- Runs a health script the way Argo CD does: `obj` is a global, the script returns `hs`.
-- Writing any other global is an error, so a missing `local` cannot slip through.
local function check(script, object)
  local env = setmetatable({ obj = object }, {
    __index = _G,
    __newindex = function(_, k) error("health script writes global " .. tostring(k), 2) end,
  })
  local chunk, err
  if setfenv then
    chunk, err = loadfile(script)
    if chunk then setfenv(chunk, env) end
  else
    chunk, err = loadfile(script, "t", env)
  end
  if not chunk then error(err) end
  return chunk()
end

local T = "2026-01-02T03:04:05Z"
local function cond(type_, status, reason, message)
  return { type = type_, status = status, reason = reason, message = message or "", lastTransitionTime = T }
end

-- A ChangeOrder whose status carries the conditions the contract sets for each phase.
local function order(phase, conditions, extra)
  local o = {
    apiVersion = "changeorder.io/v1alpha1",
    kind = "ChangeOrder",
    metadata = { name = "edas-1234", namespace = "demo", generation = 1 },
    spec = { provider = "edas", changeOrderId = "1234", appId = "demo-edas-app" },
  }
  if phase ~= nil then
    o.status = { phase = phase, observedGeneration = 1, conditions = conditions }
  end
  for k, v in pairs(extra or {}) do o.status[k] = v end
  return o
end

local order_cases = {
  { name = "no status yet", obj = order(nil),
    status = "Progressing", message = "Waiting for the operator to report the order's status" },
  { name = "status without conditions", obj = order("Pending", {}),
    status = "Progressing", message = "Waiting for the operator to report the order's status" },
  { name = "pending", obj = order("Pending", {
      cond("Ready", "False", "Preparing"), cond("Reconciling", "True", "Preparing", "Preparing the deployment"),
      cond("Stalled", "False", "Preparing"), cond("AwaitingInput", "False", "Preparing") }),
    status = "Progressing", message = "Preparing the deployment" },
  { name = "running, message falls back to the reason", obj = order("Running", {
      cond("Ready", "False", "Executing"), cond("Reconciling", "True", "Executing"),
      cond("Stalled", "False", "Executing"), cond("AwaitingInput", "False", "Executing") }),
    status = "Progressing", message = "Executing" },
  { name = "running with an SAE exception", obj = order("Running", {
      cond("Ready", "False", "Executing"), cond("Reconciling", "True", "Executing", "Batch 2 of 3"),
      cond("Stalled", "False", "Executing"), cond("AwaitingInput", "False", "Executing"),
      cond("Degraded", "True", "ExecutionException", "Instance start timed out") }),
    status = "Progressing", message = "Batch 2 of 3 (Instance start timed out)" },
  { name = "awaiting batch confirmation", obj = order("AwaitingConfirmation", {
      cond("Ready", "False", "ManualBatchConfirmation"),
      cond("Reconciling", "True", "ManualBatchConfirmation"),
      cond("Stalled", "False", "ManualBatchConfirmation"),
      cond("AwaitingInput", "True", "ManualBatchConfirmation", "Batch 1 done; confirm to start batch 2") }),
    status = "Suspended", message = "Batch 1 done; confirm to start batch 2" },
  { name = "awaiting approval", obj = order("AwaitingApproval", {
      cond("Ready", "False", "PendingApproval"), cond("Reconciling", "True", "PendingApproval"),
      cond("AwaitingInput", "True", "PendingApproval"), cond("Stalled", "False", "PendingApproval") }),
    status = "Suspended", message = "PendingApproval" },
  { name = "appstack paused", obj = order("Paused", {
      cond("Ready", "False", "Suspended"), cond("Reconciling", "True", "Suspended"),
      cond("AwaitingInput", "True", "Suspended", "Paused by alice"), cond("Stalled", "False", "Suspended") }),
    status = "Suspended", message = "Paused by alice" },
  { name = "succeeded", obj = order("Succeeded", {
      cond("Ready", "True", "Succeeded", "Deployed 3 batches"), cond("Reconciling", "False", "Succeeded"),
      cond("Stalled", "False", "Succeeded"), cond("AwaitingInput", "False", "Succeeded") }),
    status = "Healthy", message = "Deployed 3 batches" },
  { name = "failed", obj = order("Failed", {
      cond("Ready", "False", "Failed"), cond("Reconciling", "False", "Failed"),
      cond("Stalled", "True", "Failed", "Health check failed on batch 2"), cond("AwaitingInput", "False", "Failed") }),
    status = "Degraded", message = "Health check failed on batch 2" },
  { name = "cancelled, no cloud message", obj = order("Cancelled", {
      cond("Ready", "False", "Terminated"), cond("Reconciling", "False", "Terminated"),
      cond("Stalled", "True", "Terminated"), cond("AwaitingInput", "False", "Terminated") }),
    status = "Degraded", message = "Terminated" },
  { name = "unknown provider status", obj = order("Unknown", {
      cond("Ready", "Unknown", "UnknownStatus", "Provider status 42"),
      cond("Reconciling", "True", "UnknownStatus", "Provider status 42"),
      cond("Stalled", "False", "UnknownStatus"), cond("AwaitingInput", "False", "UnknownStatus") }),
    status = "Progressing", message = "Provider status 42" },
  { name = "status older than the spec", obj = order("Succeeded", {
      cond("Ready", "True", "Succeeded") }, { observedGeneration = 0 }),
    status = "Progressing", message = "Waiting for the operator to catch up with the latest change" },
}

local function watch(status, spec_extra)
  local o = {
    apiVersion = "changeorder.io/v1alpha1",
    kind = "ChangeOrderWatch",
    metadata = { name = "demo-edas", namespace = "demo", generation = 2 },
    spec = { provider = "edas", appId = "demo-edas-app", endpoint = "http://127.0.0.1:8080",
             credentialsSecretRef = { name = "edas-credentials" } },
    status = status,
  }
  for k, v in pairs(spec_extra or {}) do o.spec[k] = v end
  return o
end

local watch_cases = {
  { name = "not polled yet", obj = watch(nil), status = "Progressing", message = "Waiting for the first poll" },
  { name = "polled", obj = watch({ observedGeneration = 2, conditions = {
      cond("Ready", "True", "Polled", "3 orders, 1 in flight") } }),
    status = "Healthy", message = "3 orders, 1 in flight" },
  { name = "invalid credentials", obj = watch({ observedGeneration = 2, conditions = {
      cond("Ready", "False", "InvalidCredentials", "InvalidAccessKeyId.NotFound: Specified access key is not found.") } }),
    status = "Degraded", message = "InvalidAccessKeyId.NotFound: Specified access key is not found." },
  { name = "throttled, message falls back to the reason", obj = watch({ observedGeneration = 2, conditions = {
      cond("Ready", "False", "Throttled") } }),
    status = "Degraded", message = "Throttled" },
  { name = "ready unknown", obj = watch({ observedGeneration = 2, conditions = {
      cond("Ready", "Unknown", "Polling", "First poll in progress") } }),
    status = "Progressing", message = "First poll in progress" },
  { name = "spec changed since the last poll", obj = watch({ observedGeneration = 1, conditions = {
      cond("Ready", "False", "AppNotFound") } }),
    status = "Progressing", message = "Waiting for a poll with the latest spec" },
  { name = "suspended", obj = watch({ observedGeneration = 2, conditions = {
      cond("Ready", "True", "Polled") } }, { suspend = true }),
    status = "Suspended", message = "Polling is suspended (spec.suspend)" },
}

local passed, failed = 0, 0
local function run(script, cases)
  for _, c in ipairs(cases) do
    local ok, hs = pcall(check, dir .. "/" .. script, c.obj)
    if not ok then
      failed = failed + 1
      print(string.format("FAIL %s: %s: error: %s", script, c.name, tostring(hs)))
    elseif type(hs) ~= "table" or hs.status ~= c.status or hs.message ~= c.message then
      failed = failed + 1
      print(string.format("FAIL %s: %s: want %s %q, got %s %q", script, c.name, c.status, c.message,
        tostring(type(hs) == "table" and hs.status), tostring(type(hs) == "table" and hs.message)))
    else
      passed = passed + 1
      print(string.format("ok   %s: %s -> %s", script, c.name, hs.status))
    end
  end
end

run("health.lua", order_cases)
run("watch-health.lua", watch_cases)
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
