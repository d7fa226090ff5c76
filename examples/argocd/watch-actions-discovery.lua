-- Argo CD resource actions for changeorder.io/ChangeOrderWatch: which ones the UI offers.
-- "poll-now" is disabled while the watch is suspended, since the operator would not poll anyway.
local actions = {}
actions["poll-now"] = { ["disabled"] = obj.spec ~= nil and obj.spec.suspend == true }
return actions
