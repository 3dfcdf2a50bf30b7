-- wrk script of the soak benchmark: a mix of allocation churn, stores and reads over 1000 keys.
local n = 0
request = function()
  n = n + 1
  local k = "key" .. (math.floor(n / 4) % 1000)
  local r = n % 4
  if r == 0 then
    return wrk.format("GET", "/churn")
  elseif r == 1 then
    return wrk.format("PUT", "/kv/" .. k, nil, string.rep("v", 100 + n % 400))
  else
    return wrk.format("GET", "/kv/" .. k)
  end
end
