-- wrk script for the token-endpoint benchmarks (bench/run.py builds the command line).
-- Arguments after "--": method path authorization tokens_file body_prefix nthreads limit done_dir
--   tokens_file  "-" or a file of pre-minted subject tokens, one per line; thread i uses lines i, i+n, ...
--                (each token is sent once: the bench issuers keep jti replay protection on)
--   body_prefix  "-" for no body, else the form body; the token is appended to it
--   limit        stop each thread after this many responses (0: run for the duration); the thread
--                then creates done_dir/done-<thread> so that bench/run.py can end wrk with SIGINT
--                (wrk itself always waits out its -d duration)
local counter = 0
local threads = {}

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   method, path, auth, tokens_file, prefix = args[1], args[2], args[3], args[4], args[5]
   local nthreads = tonumber(args[6])
   limit = tonumber(args[7]) or 0
   done_dir = args[8] or "-"
   tokens, next_token, responses, bad, exhausted, sample = {}, 0, 0, 0, 0, ""
   if tokens_file ~= "-" then
      local i = 0
      for line in io.lines(tokens_file) do
         if i % nthreads == id then table.insert(tokens, line) end
         i = i + 1
      end
   end
   headers = {}
   if auth ~= "-" then headers["Authorization"] = auth end
   if prefix ~= "-" then headers["Content-Type"] = "application/x-www-form-urlencoded" end
end

function request()
   local body = nil
   if #tokens > 0 then
      next_token = next_token + 1
      if next_token > #tokens then
         -- Pool exhausted: the token is a replay and will be refused (counted as an error).
         next_token = 1
         exhausted = exhausted + 1
      end
      body = prefix .. tokens[next_token]
   elseif prefix ~= "-" then
      body = prefix
   end
   return wrk.format(method, path, headers, body)
end

function response(status, hdrs, body)
   responses = responses + 1
   if status ~= 200 then
      bad = bad + 1
      if sample == "" then
         sample = (status .. " " .. string.sub(body, 1, 200)):gsub('[%c"\\]', "'")
      end
   end
   if limit > 0 and responses == limit then
      if done_dir ~= "-" then
         local marker = io.open(done_dir .. "/done-" .. id, "w")
         if marker then marker:close() end
      end
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local bad_total, exhausted_total, samples = 0, 0, ""
   for _, thread in ipairs(threads) do
      bad_total = bad_total + thread:get("bad")
      exhausted_total = exhausted_total + thread:get("exhausted")
      if samples == "" then samples = thread:get("sample") end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
      '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_timeout": %d, "errors_status": %d, ' ..
      '"non_200": %d, "pool_exhausted": %d, "sample": "%s"}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout, e.status, bad_total, exhausted_total, samples))
end
