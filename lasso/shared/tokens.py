"""The shared token bucket: one Lua script, run atomically inside Redis.

The same bucket as :class:`lasso.core.tokenbucket.TokenBucket` (starts full, refills at
``rate`` per second up to ``burst``, a take costs ``cost`` tokens clamped to
``1..burst``, a refused take takes nothing and says how long until it would pass), kept
in a Redis hash (``t`` tokens, ``s`` the last refill in ms). The clock is Redis's own
``TIME``, so every instance agrees on it whatever their clocks say. The key expires once
the bucket would be full again: an expired bucket and a full one are the same.

Returns the wait in milliseconds as a string (a Lua number reply would be truncated to
an integer): ``"0"`` when taken.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["TAKE_SCRIPT", "TAKE_SHA"]

TAKE_SCRIPT: Final = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = math.max(1, math.min(tonumber(ARGV[3]), burst))
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 't', 's')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = burst
  stamp = now
end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate / 1000)
stamp = math.max(stamp, now)
local wait = 0
if tokens + 1e-9 >= cost then
  tokens = math.max(0, tokens - cost)
else
  wait = (cost - tokens) * 1000 / rate
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 's', string.format('%.17g', stamp))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return string.format('%.17g', wait)
"""

TAKE_SHA: Final = hashlib.sha1(TAKE_SCRIPT.encode()).hexdigest()
