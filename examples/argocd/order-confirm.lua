-- Argo CD resource action "confirm" for changeorder.io/ChangeOrder: creates a ChangeOrderAction
-- that confirms the next batch, guarded by the batch shown now (expectedBatch), so a click on a
-- stale page cannot confirm a later batch. Needs Argo CD 2.8 or later (actions that create).
local batch = obj.status ~= nil and obj.status.currentBatch or nil
local spec = { changeOrder = obj.metadata.name, action = "Confirm" }
if batch ~= nil then
  spec.expectedBatch = batch
end
local request = {
  apiVersion = "changeorder.io/v1alpha1",
  kind = "ChangeOrderAction",
  metadata = {
    -- Unique per click; names are at most 253 characters.
    name = string.sub(obj.metadata.name, 1, 200) .. "-confirm-" .. os.date("!%Y%m%d%H%M%S"),
    namespace = obj.metadata.namespace,
  },
  spec = spec,
}
return { { operation = "create", resource = request } }
