-- Argo CD resource actions for changeorder.io/ChangeOrder: which ones the UI offers. Each creates
-- a ChangeOrderAction; the operator carries it out only when it runs with --enable-actions and the
-- order's ChangeOrderWatch lists the action in spec.actions.allowed.
local actions = {}
local phase = obj.status ~= nil and obj.status.phase or nil
local in_flight = phase == "Pending" or phase == "Running" or phase == "AwaitingConfirmation"
  or phase == "AwaitingApproval" or phase == "Paused"
actions["confirm"] = { ["disabled"] = phase ~= "AwaitingConfirmation" }
actions["abort"] = { ["disabled"] = not in_flight }
return actions
