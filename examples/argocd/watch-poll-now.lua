-- Argo CD resource action "poll-now" for changeorder.io/ChangeOrderWatch: asks the operator to
-- poll the cloud at once by setting the reconcile-request annotation to a new value (the current
-- time). The operator records the value it acted on in status.lastHandledReconcileAt.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["changeorder.io/reconcile-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
