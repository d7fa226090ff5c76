-- Argo CD health check for changeorder.io/ChangeOrderWatch: its Ready condition says whether the
-- last poll of the cloud worked. Lua 5.1, as Argo CD runs it.
local hs = {}

local ready = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or ""
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status and obj.status.observedGeneration

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Polling is suspended (spec.suspend)"
elseif ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first poll"
elseif generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for a poll with the latest spec"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.status = "Progressing"
  hs.message = describe(ready)
end
return hs
