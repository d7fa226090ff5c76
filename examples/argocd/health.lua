-- Argo CD health check for changeorder.io/ChangeOrder, read from the order's kstatus conditions.
-- Argo CD runs it with gopher-lua (Lua 5.1): no goto, no integer division, no utf8 library.
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

local function is_true(c)
  return c ~= nil and c.status == "True"
end

-- The cloud's own words when it gave any, else the condition's reason.
local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or ""
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status and obj.status.observedGeneration
if obj.status == nil or obj.status.conditions == nil or #obj.status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the order's status"
  return hs
end
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to catch up with the latest change"
  return hs
end

local stalled = condition("Stalled")
local ready = condition("Ready")
local awaiting = condition("AwaitingInput")
local reconciling = condition("Reconciling")

if is_true(stalled) then
  -- Failed or cancelled: the order will not succeed any more.
  hs.status = "Degraded"
  hs.message = describe(stalled)
elseif is_true(ready) then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif is_true(awaiting) then
  -- A person must confirm a batch, approve, or resume the order in the cloud console.
  hs.status = "Suspended"
  hs.message = describe(awaiting)
elseif is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  local degraded = condition("Degraded")
  if is_true(degraded) then
    hs.message = hs.message .. " (" .. describe(degraded) .. ")"
  end
else
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the order's status"
end
return hs
