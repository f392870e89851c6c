-- Argo CD health of a plinth ImagePolicy (catalog.plinth.dev). It reads the
-- conditions the way kstatus does for Flux and kubectl wait:
--   no conditions yet, or a generation not yet observed     -> Progressing
--   Reconciling=True                                        -> Progressing
--   Stalled=True (InvalidSpec)                              -> Degraded
--   Ready=True                                              -> Healthy
--   Ready=False or Unknown, neither Stalled nor Reconciling -> Progressing
-- An ImagePolicy cannot be suspended. It uses the Lua base library only,
-- which is all Argo CD opens by default.
local hs = {}
local status = obj.status or {}
local conditions = status.conditions or {}

if #conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for plinth to check the policy"
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
    hs.status = "Degraded"
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
