-- wrk script for keyfob's benchmark: refresh-token chains, live access tokens, counts.
--
--   wrk -t1 -c16 -d10s -s chain.lua URL -- MODE FILE PATH METHOD SEND RECV
--
-- MODE   refresh    every request presents a refresh token that has never been used:
--                   one taken from FILE (one per line, each the head of a chain) or one
--                   that an earlier response of this thread returned. A response's new
--                   token goes back on the thread's queue, so each chain advances one
--                   rotation per request and no token is ever presented twice.
--        protected  requests cycle through the access tokens in FILE (round robin).
--        static     the same request every time (baselines); FILE is ignored.
-- SEND   how the token travels: json:<field> (JSON body), cookie:<name>, bearer, none
-- RECV   where the new refresh token is in the response: json:<field>, cookie:<name>
--
-- Every answer that is not 2xx is counted (non2xx), as are requests sent with no token
-- left (missing) and 2xx answers without a new token (notoken): all must be 0. done()
-- prints one line "WRKJSON {...}" for the harness.

local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("id", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

non2xx = 0
missing = 0
notoken = 0
statuses = {}

local mode, method, path
local send_kind, send_name, recv_kind, recv_name, recv_pattern
local queue, head, tail = {}, 1, 0
local pool, pool_n, pool_i = {}, 0, 0
local static_request
-- wrk calls request() once on thread 0's state before the run to check the script and
-- throws the result away: that call must not consume a refresh token.
local discard_first

local function split(spec)
  local kind, name = string.match(spec, "^([^:]+):?(.*)$")
  return kind, name
end

local function push(token)
  tail = tail + 1
  queue[tail] = token
end

function init(args)
  mode, method, path = args[1], args[4], args[3]
  local file = args[2]
  local total_threads = tonumber(args[7] or "1")
  send_kind, send_name = split(args[5] or "none")
  recv_kind, recv_name = split(args[6] or "none")
  if recv_kind == "json" then
    recv_pattern = '"' .. recv_name .. '"%s*:%s*"([^"]+)"'
  elseif recv_kind == "cookie" then
    recv_pattern = recv_name .. "=([^;]+)"
  end
  discard_first = (id == 0)
  if mode ~= "static" then
    local i = 0
    for line in io.lines(file) do
      if line ~= "" then
        if i % total_threads == id then
          if mode == "refresh" then
            push(line)
          else
            pool_n = pool_n + 1
            pool[pool_n] = line
          end
        end
        i = i + 1
      end
    end
  else
    static_request = wrk.format(method, path)
  end
end

local json_headers = { ["Content-Type"] = "application/json" }

local function with_token(token)
  if send_kind == "json" then
    return wrk.format(method, path, json_headers, '{"' .. send_name .. '":"' .. token .. '"}')
  elseif send_kind == "cookie" then
    return wrk.format(method, path, { ["Cookie"] = send_name .. "=" .. token })
  else -- bearer
    return wrk.format(method, path, { ["Authorization"] = "Bearer " .. token })
  end
end

function request()
  if mode == "static" then
    return static_request
  end
  local token
  if discard_first then
    discard_first = false
    return with_token("wrk-checks-the-script")
  end
  if mode == "refresh" then
    if head > tail then
      missing = missing + 1
      token = "no-token-left"
    else
      token = queue[head]
      queue[head] = nil
      head = head + 1
    end
  else
    pool_i = pool_i % pool_n + 1
    token = pool[pool_i]
  end
  return with_token(token)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
    return
  end
  if mode ~= "refresh" then
    return
  end
  local token
  if recv_kind == "json" then
    token = string.match(body, recv_pattern)
  else
    for name, value in pairs(headers) do
      if string.lower(name) == "set-cookie" then
        token = string.match(value, recv_pattern)
      end
    end
  end
  if token then
    push(token)
  else
    notoken = notoken + 1
  end
end

function done(summary, latency, requests)
  local n2, miss, nt = 0, 0, 0
  local codes = {}
  for _, thread in ipairs(threads) do
    n2 = n2 + thread:get("non2xx")
    miss = miss + thread:get("missing")
    nt = nt + thread:get("notoken")
    for code, count in pairs(thread:get("statuses")) do
      codes[#codes + 1] = string.format('"%s":%d', code, count)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"missing":%d,'
      .. '"notoken":%d,"statuses":{%s},"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"timeouts":%d,"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,'
      .. '"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, n2, miss, nt, table.concat(codes, ","),
    e.connect, e.read, e.write, e.timeout, latency.mean, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
end
