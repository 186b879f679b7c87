-- unique.lua makes wrk post Jamf webhooks the way cmd/loadgen does: every
-- request's body is unique (its serial number and udid carry the run, the
-- thread and a counter), so JetStream's dedup window folds none of them,
-- and requests go round robin over the tokens.
--
--   wrk -c 64 -t 2 -d 10s --latency -s unique.lua http://127.0.0.1:5000 -- TOKENS BODY RUN
--
-- TOKENS: a file of Jamf URLs (or tokens), one a line; BODY: a JSON body
-- with @SEQ@ where the unique part goes; RUN: a word that differs per run.
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local paths, body, run, n = {}, nil, "run", 0

function init(args)
  for line in io.lines(args[1]) do
    local tok = line:match("/jamf/([^/%s]+)") or line:match("^%s*(%S+)%s*$")
    if tok then paths[#paths + 1] = "/jamf/" .. tok end
  end
  local f = assert(io.open(args[2], "r"))
  body = f:read("*a")
  f:close()
  run = args[3] or run
end

local headers = { ["Content-Type"] = "application/json" }

function request()
  n = n + 1
  local seq = run .. "-" .. tostring(tid) .. "-" .. tostring(n)
  local b = body:gsub("@SEQ@", seq)
  return wrk.format("POST", paths[(n % #paths) + 1], headers, b)
end
