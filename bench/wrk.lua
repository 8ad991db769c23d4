-- wrk script for bench/bench.py. Arguments after "--":
--   METHOD PATH BODIES EXPECT NEEDLE CTYPE AUTH NTHREADS LIMIT
-- PATH    request path; "@FILE" = one path per line, walked
-- BODIES  "-" for no body, "@FILE" = one body per line, walked (each line
--         sent once: thread i of n takes lines i, i+n, ...; a thread that
--         has used up its lines stops), or a literal body sent every time;
--         a line "t=...,v1=...<TAB>body" is a Stripe event: the part before
--         the tab goes out as its Stripe-Signature header; a line
--         "H|Name: value|Name: value<TAB>body" carries its own headers
--         (WeChat Pay v3 notifications)
-- EXPECT  expected HTTP status (201, 200)
-- NEEDLE  "-" or a plain substring the response body must contain
-- CTYPE   Content-Type of the body ("-" for none)
-- AUTH    Authorization header value ("-" for none)
-- LIMIT   stop each thread after LIMIT/NTHREADS responses (0 = no limit)
-- done() prints one line: BENCH {json}.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local items, paths, headers, method, body_const
local nitems, npaths, pos, ppos, per_thread, seen
local expect, needle, started = 200, nil, false
ok_count, bad_status, bad_body, exhausted = 0, 0, 0, 0

local function read_lines(file)
  local t = {}
  for line in io.lines(file) do
    if #line > 0 then t[#t + 1] = line end
  end
  return t
end

local function start()
  local a = args
  method = a[1]
  local nthreads = tonumber(a[8])
  local tid = id or 0
  if a[2]:sub(1, 1) == "@" then
    paths = read_lines(a[2]:sub(2)); npaths = #paths; ppos = tid % npaths
  end
  if a[3]:sub(1, 1) == "@" then
    local all = read_lines(a[3]:sub(2))
    items = {}
    for i = tid + 1, #all, nthreads do items[#items + 1] = all[i] end
    nitems = #items; pos = 0
  elseif a[3] ~= "-" then
    body_const = a[3]
  end
  expect = tonumber(a[4])
  if a[5] ~= "-" then needle = a[5] end
  headers = {}
  if a[6] ~= "-" then headers["Content-Type"] = a[6] end
  if a[7] ~= "-" then headers["Authorization"] = a[7] end
  local limit = tonumber(a[9])
  if limit > 0 then per_thread = math.floor(limit / nthreads) end
  seen = 0
  started = true
end

function init(a)
  args = a
end

function request()
  if not started then start() end
  local path = wrk.path
  if paths then
    ppos = ppos % npaths + 1
    path = paths[ppos]
  end
  local body = body_const
  if items then
    pos = pos + 1
    if pos > nitems then
      exhausted = 1
      pos = nitems
    end
    body = items[pos]
  end
  if body and body:sub(1, 2) == "H|" then
    local tab = body:find("\t", 1, true)
    if tab then
      local h = {}
      for k, v in pairs(headers) do h[k] = v end
      for name, value in body:sub(3, tab - 1):gmatch("([^|:]+): ([^|]*)") do h[name] = value end
      return wrk.format(method, path, h, body:sub(tab + 1))
    end
  end
  if body and body:sub(1, 2) == "t=" then
    local tab = body:find("\t", 1, true)
    if tab then
      local h = {}
      for k, v in pairs(headers) do h[k] = v end
      h["Stripe-Signature"] = body:sub(1, tab - 1)
      return wrk.format(method, path, h, body:sub(tab + 1))
    end
  end
  return wrk.format(method, path, headers, body)
end

function response(status, hdrs, body)
  seen = seen + 1
  if status ~= expect then
    bad_status = bad_status + 1
  elseif needle and not string.find(body, needle, 1, true) then
    bad_body = bad_body + 1
  else
    ok_count = ok_count + 1
  end
  if (items and pos >= nitems) or (per_thread and seen >= per_thread) then
    if items and pos >= nitems then exhausted = 1 end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local ok, bs, bb, ex = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    ok = ok + (t:get("ok_count") or 0)
    bs = bs + (t:get("bad_status") or 0)
    bb = bb + (t:get("bad_body") or 0)
    ex = ex + (t:get("exhausted") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"duration_us":%d,"requests":%d,"ok":%d,"bad_status":%d,"bad_body":%d,' ..
    '"exhausted":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, ok, bs, bb, ex, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max))
end
