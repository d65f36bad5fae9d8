-- wrk script of tests/soak/soak.py: counts the answers by HTTP status in each
-- wrk thread and prints one "status CODE COUNT" line per status at the end,
-- so the soak can tell which statuses a GET endpoint answered (wrk itself
-- only prints "Non-2xx or 3xx responses: N").
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {} -- global: read from the main thread with thread:get()
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses") or {}
    for k, v in pairs(s) do
      total[k] = (total[k] or 0) + v
    end
  end
  for k, v in pairs(total) do
    io.write(string.format("status %s %d\n", k, v))
  end
end
