-- Argo CD health check for changeorder.io/ChangeOrderWatch. Argo CD never rolls a child's health
-- up to its parent, and the watch is what lives in Git, so the watch's health follows the newest
-- change order it found (status.latestOrder): Progressing while it runs, Suspended while a person
-- must confirm, approve or resume it, Degraded when it failed or was cancelled, Healthy when it
-- succeeded. A watch that cannot poll until someone fixes it (Stalled) is Degraded whatever its
-- orders say, since its view of them is stale. Lua 5.1, as Argo CD runs it.
local hs = {}

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or ""
end

-- "Change order 1234 AwaitingConfirmation: Batch 1 done; confirm to start batch 2"
local function describe_order(o)
  local text = "Change order " .. tostring(o.changeOrderId) .. " " .. tostring(o.phase or "Pending")
  local detail = o.message
  if detail == nil or detail == "" then
    detail = o.reason
  end
  if detail ~= nil and detail ~= "" then
    text = text .. ": " .. detail
  end
  return text
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status and obj.status.observedGeneration
local ready = condition("Ready")
local stalled = condition("Stalled")
local reconciling = condition("Reconciling")
local latest = obj.status and obj.status.latestOrder

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Polling is suspended (spec.suspend)"
elseif ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first poll"
elseif generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for a poll with the latest spec"
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
elseif stalled == nil and ready.status == "False" then
  -- Written by an operator older than the Stalled condition: only Ready is known.
  hs.status = "Degraded"
  hs.message = describe(ready)
elseif latest ~= nil then
  local phase = latest.phase
  hs.message = describe_order(latest)
  if phase == "Succeeded" then
    hs.status = "Healthy"
  elseif phase == "Failed" or phase == "Cancelled" then
    hs.status = "Degraded"
  elseif phase == "AwaitingConfirmation" or phase == "AwaitingApproval" or phase == "Paused" then
    hs.status = "Suspended"
  else
    hs.status = "Progressing"
  end
elseif reconciling ~= nil and reconciling.status == "True" then
  -- The first poll has not finished, or a transient failure is being retried.
  hs.status = "Progressing"
  hs.message = describe(reconciling)
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = "No change orders yet: " .. describe(ready)
else
  hs.status = "Progressing"
  hs.message = describe(ready)
end
return hs
