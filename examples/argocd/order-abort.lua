-- Argo CD resource action "abort" for changeorder.io/ChangeOrder: creates a ChangeOrderAction that
-- aborts the order in the cloud. Needs Argo CD 2.8 or later (actions that create).
local request = {
  apiVersion = "changeorder.io/v1alpha1",
  kind = "ChangeOrderAction",
  metadata = {
    name = string.sub(obj.metadata.name, 1, 200) .. "-abort-" .. os.date("!%Y%m%d%H%M%S"),
    namespace = obj.metadata.namespace,
  },
  spec = { changeOrder = obj.metadata.name, action = "Abort" },
}
return { { operation = "create", resource = request } }
