-- Argo CD health of a plinth BaseImage (catalog.plinth.dev). It reads the
-- conditions the way kstatus does for Flux and kubectl wait:
--   spec.suspend, or Stalled=True with reason Suspended     -> Suspended
--   no conditions yet, or a generation not yet observed     -> Progressing
--   Reconciling=True                                        -> Progressing
--   Stalled=True (PolicyDenied, PullSecretNotFound, ...)    -> Degraded
--   Ready=True                                              -> Healthy
--   Ready=False or Unknown, neither Stalled nor Reconciling -> Progressing
-- It uses the Lua base library only, which is all Argo CD opens by default.
local hs = {}
local status = obj.status or {}
local conditions = status.conditions or {}

local stalled = nil
for _, c in ipairs(conditions) do
  if c.type == "Stalled" and c.status == "True" then
    stalled = c
    break
  end
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  if stalled ~= nil and stalled.reason == "Suspended" and stalled.message ~= nil then
    hs.message = stalled.message
  else
    hs.message = "The entry is suspended"
  end
  return hs
end

if #conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for plinth to check the entry"
  return hs
end

-- As kstatus: an observedGeneration behind the generation is in progress;
-- without one (a first check that failed to finish) the conditions decide.
local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and observed ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for plinth to check generation " .. generation
  return hs
end

-- As kstatus: the first of Reconciling=True and Stalled=True decides.
for _, c in ipairs(conditions) do
  if c.type == "Reconciling" and c.status == "True" then
    hs.status = "Progressing"
    hs.message = c.message or ""
    return hs
  end
  if c.type == "Stalled" and c.status == "True" then
    if c.reason == "Suspended" then
      hs.status = "Suspended"
    else
      hs.status = "Degraded"
    end
    hs.message = c.message or ""
    return hs
  end
end

for _, c in ipairs(conditions) do
  if c.type == "Ready" then
    if c.status == "True" then
      hs.status = "Healthy"
    else
      hs.status = "Progressing"
    end
    hs.message = c.message or ""
    return hs
  end
end

hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
