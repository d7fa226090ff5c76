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

-- The conditions the operator writes for a poll outcome (see src/controller/watch_status.rs).
local function polled(extra)
  local st = { observedGeneration = 2, conditions = {
    cond("Ready", "True", "Polled", "polled: 3 orders, 1 in flight"), cond("Stalled", "False", "Polled"),
    cond("Reconciling", "False", "Polled") } }
  for k, v in pairs(extra or {}) do st[k] = v end
  return st
end
local function failing(reason, message, is_stalled, extra)
  local st = { observedGeneration = 2, conditions = {
    cond("Ready", "False", reason, message), cond("Stalled", is_stalled and "True" or "False", reason, message),
    cond("Reconciling", is_stalled and "False" or "True", reason, message) } }
  for k, v in pairs(extra or {}) do st[k] = v end
  return st
end
local function latest(phase, reason, message)
  return { name = "demo-edas-1234", changeOrderId = "1234", phase = phase, reason = reason, message = message,
           createTime = T }
end

local watch_cases = {
  { name = "not polled yet", obj = watch(nil), status = "Progressing", message = "Waiting for the first poll" },
  { name = "first poll pending", obj = watch({ observedGeneration = 2, conditions = {
      cond("Ready", "Unknown", "AwaitingFirstPoll", "waiting for the first poll"),
      cond("Stalled", "False", "AwaitingFirstPoll"),
      cond("Reconciling", "True", "AwaitingFirstPoll", "waiting for the first poll") } }),
    status = "Progressing", message = "waiting for the first poll" },
  { name = "polled, no orders yet", obj = watch(polled()),
    status = "Healthy", message = "No change orders yet: polled: 3 orders, 1 in flight" },
  { name = "latest order running", obj = watch(polled({ latestOrder = latest("Running", "Executing", "Batch 1 of 3") })),
    status = "Progressing", message = "Change order 1234 Running: Batch 1 of 3" },
  { name = "latest order pending, message falls back to the reason",
    obj = watch(polled({ latestOrder = latest("Pending", "Preparing") })),
    status = "Progressing", message = "Change order 1234 Pending: Preparing" },
  { name = "latest order without a status yet", obj = watch(polled({ latestOrder = { name = "demo-edas-1234",
      changeOrderId = "1234" } })),
    status = "Progressing", message = "Change order 1234 Pending" },
  { name = "latest order in an unknown provider status",
    obj = watch(polled({ latestOrder = latest("Unknown", "UnknownStatus", "status 42") })),
    status = "Progressing", message = "Change order 1234 Unknown: status 42" },
  { name = "latest order awaits batch confirmation", obj = watch(polled({ latestOrder = latest("AwaitingConfirmation",
      "ManualBatchConfirmation", "Batch 1 done; confirm to start batch 2") })),
    status = "Suspended", message = "Change order 1234 AwaitingConfirmation: Batch 1 done; confirm to start batch 2" },
  { name = "latest order awaits approval", obj = watch(polled({ latestOrder = latest("AwaitingApproval",
      "PendingApproval") })),
    status = "Suspended", message = "Change order 1234 AwaitingApproval: PendingApproval" },
  { name = "latest order paused", obj = watch(polled({ latestOrder = latest("Paused", "Suspended", "Paused by alice") })),
    status = "Suspended", message = "Change order 1234 Paused: Paused by alice" },
  { name = "latest order succeeded", obj = watch(polled({ latestOrder = latest("Succeeded", "Succeeded",
      "Deployed 3 batches") })),
    status = "Healthy", message = "Change order 1234 Succeeded: Deployed 3 batches" },
  { name = "latest order failed", obj = watch(polled({ latestOrder = latest("Failed", "Failed",
      "Health check failed on batch 2") })),
    status = "Degraded", message = "Change order 1234 Failed: Health check failed on batch 2" },
  { name = "latest order cancelled", obj = watch(polled({ latestOrder = latest("Cancelled", "Terminated") })),
    status = "Degraded", message = "Change order 1234 Cancelled: Terminated" },
  { name = "invalid credentials stall the watch whatever its orders say", obj = watch(failing("InvalidCredentials",
      "InvalidAccessKeyId.NotFound: Specified access key is not found.", true,
      { latestOrder = latest("Succeeded", "Succeeded") })),
    status = "Degraded", message = "InvalidAccessKeyId.NotFound: Specified access key is not found." },
  { name = "endpoint not allowed", obj = watch(failing("EndpointNotAllowed", "", true)),
    status = "Degraded", message = "EndpointNotAllowed" },
  { name = "throttled before any order: retrying", obj = watch(failing("Throttled",
      "Throttling.User: slow down", false)),
    status = "Progressing", message = "Throttling.User: slow down" },
  { name = "throttled: health follows the last known order", obj = watch(failing("Throttled",
      "Throttling.User: slow down", false, { latestOrder = latest("Succeeded", "Succeeded") })),
    status = "Healthy", message = "Change order 1234 Succeeded: Succeeded" },
  { name = "written by an older operator: only Ready, False", obj = watch({ observedGeneration = 2, conditions = {
      cond("Ready", "False", "InvalidCredentials", "InvalidAccessKeyId.NotFound: no such key") } }),
    status = "Degraded", message = "InvalidAccessKeyId.NotFound: no such key" },
  { name = "written by an older operator: only Ready, True", obj = watch({ observedGeneration = 2, conditions = {
      cond("Ready", "True", "Polled", "3 orders, 1 in flight") } }),
    status = "Healthy", message = "No change orders yet: 3 orders, 1 in flight" },
  { name = "spec changed since the last poll", obj = watch(failing("AppNotFound", "", true,
      { observedGeneration = 1 })),
    status = "Progressing", message = "Waiting for a poll with the latest spec" },
  { name = "suspended", obj = watch(polled({ latestOrder = latest("Failed", "Failed") }), { suspend = true }),
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

-- The resource action "poll-now" and its discovery script.
local function action_case(name, fn)
  local ok, err = pcall(fn)
  if ok then
    passed = passed + 1
    print("ok   actions: " .. name)
  else
    failed = failed + 1
    print("FAIL actions: " .. name .. ": " .. tostring(err))
  end
end
local ANNOTATION = "changeorder.io/reconcile-requested-at"
action_case("poll-now sets the reconcile-request annotation to the current UTC time", function()
  local w = watch(polled())
  local out = check(dir .. "/watch-poll-now.lua", w)
  local v = out.metadata.annotations[ANNOTATION]
  assert(type(v) == "string" and v:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"), "annotation " .. tostring(v))
  assert(out.spec.appId == "demo-edas-app", "the rest of the object is kept")
end)
action_case("poll-now keeps other annotations and replaces an old request", function()
  local w = watch(polled())
  w.metadata.annotations = { team = "payments", [ANNOTATION] = "1999-01-01T00:00:00Z" }
  local out = check(dir .. "/watch-poll-now.lua", w)
  assert(out.metadata.annotations.team == "payments", "other annotations kept")
  assert(out.metadata.annotations[ANNOTATION] ~= "1999-01-01T00:00:00Z", "a new value, so the operator polls")
end)
action_case("poll-now is offered, and disabled while the watch is suspended", function()
  local on = check(dir .. "/watch-actions-discovery.lua", watch(polled()))
  assert(on["poll-now"] ~= nil and on["poll-now"].disabled == false, "offered")
  local off = check(dir .. "/watch-actions-discovery.lua", watch(polled(), { suspend = true }))
  assert(off["poll-now"].disabled == true, "disabled when suspended")
end)
-- The ChangeOrder actions "confirm" and "abort": each creates one ChangeOrderAction.
local function waiting_order()
  return order("AwaitingConfirmation", {
    cond("Ready", "False", "ManualBatchConfirmation"), cond("AwaitingInput", "True", "ManualBatchConfirmation") },
    { currentBatch = 2 })
end
action_case("confirm creates a ChangeOrderAction guarded by the batch shown", function()
  local out = check(dir .. "/order-confirm.lua", waiting_order())
  assert(#out == 1 and out[1].operation == "create", "one create")
  local r = out[1].resource
  assert(r.kind == "ChangeOrderAction" and r.apiVersion == "changeorder.io/v1alpha1", "kind")
  assert(r.metadata.namespace == "demo", "same namespace")
  assert(r.metadata.name:match("^edas%-1234%-confirm%-%d+$"), "name " .. tostring(r.metadata.name))
  assert(r.spec.changeOrder == "edas-1234" and r.spec.action == "Confirm", "spec")
  assert(r.spec.expectedBatch == 2, "guarded by the current batch")
end)
action_case("abort creates an Abort request without a batch guard", function()
  local out = check(dir .. "/order-abort.lua", waiting_order())
  local r = out[1].resource
  assert(out[1].operation == "create" and r.spec.action == "Abort", "abort")
  assert(r.spec.expectedBatch == nil, "no guard")
  assert(r.metadata.name:match("^edas%-1234%-abort%-%d+$"), "name " .. tostring(r.metadata.name))
end)
action_case("confirm is offered only while awaiting confirmation, abort while in flight", function()
  local waiting = check(dir .. "/order-actions-discovery.lua", waiting_order())
  assert(waiting.confirm.disabled == false and waiting.abort.disabled == false, "both offered")
  local running = check(dir .. "/order-actions-discovery.lua", order("Running", {}))
  assert(running.confirm.disabled == true and running.abort.disabled == false, "abort only")
  local done = check(dir .. "/order-actions-discovery.lua", order("Succeeded", {}))
  assert(done.confirm.disabled == true and done.abort.disabled == true, "neither")
  local none = check(dir .. "/order-actions-discovery.lua", order(nil))
  assert(none.confirm.disabled == true and none.abort.disabled == true, "no status: neither")
end)
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
