-- Shared by every script (prepended to each). ARGV[1] and ARGV[2] are the
-- bounds of an absent peer's queue (signals, bytes).
--
-- Keys (standalone Redis; scripts touch keys they compute, so Redis Cluster
-- is not supported):
--   sig:room:ROOM          zset  member peer id, score join order
--   sig:rooms              set   room names
--   sig:peer:ID            hash  room, token, inst ('' when absent), conn, qbytes
--   sig:token:TOKEN        string peer id
--   sig:queue:ID           list  frames queued for an absent peer
--   sig:absent             zset  absent peer id, score resume deadline (ms)
--   sig:inst:INST:peers    set   peers present on an instance
--   sig:instances          set   instance ids
--   sig:alive:INST         string, expires unless the instance refreshes it
--   sig:npeers             integer, peers held
--   sig:epoch              string, set once per data set: a new value means
--                          Redis lost its data and instances restore theirs
-- Channel sig:ch:INST carries "F PEER FRAME" (deliver), "R PEER CONN"
-- (the peer resumed elsewhere: close that connection) and "L PEER ROOM"
-- (the peer left ROOM: forget the route to it).
local maxq = tonumber(ARGV[1])
local maxqb = tonumber(ARGV[2])
local remove_peer

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Queues a frame for a peer without a connection; one past the bounds
-- evicts the peer instead.
local function enqueue(p, frame)
  local pk = 'sig:peer:' .. p
  local qk = 'sig:queue:' .. p
  local bytes = tonumber(redis.call('HGET', pk, 'qbytes') or '0') + #frame
  if redis.call('LLEN', qk) >= maxq or bytes > maxqb then
    remove_peer(p)
  else
    redis.call('RPUSH', qk, frame)
    redis.call('HSET', pk, 'qbytes', bytes)
  end
end

-- Sends a frame to a present peer's instance; an absent peer gets it queued
-- (signals) or not at all (room events: welcome.peers covers them).
local function deliver(p, frame, queue_if_absent)
  local inst = redis.call('HGET', 'sig:peer:' .. p, 'inst')
  if not inst then return end
  if inst ~= '' then
    redis.call('PUBLISH', 'sig:ch:' .. inst, 'F ' .. p .. ' ' .. frame)
  elseif queue_if_absent then
    enqueue(p, frame)
  end
end

-- Drops a peer from every key and tells the rest of its room.
remove_peer = function(p)
  local pk = 'sig:peer:' .. p
  local f = redis.call('HMGET', pk, 'room', 'token', 'inst')
  local room = f[1]
  if not room then return end
  redis.call('DEL', pk, 'sig:queue:' .. p, 'sig:token:' .. f[2])
  redis.call('ZREM', 'sig:absent', p)
  if f[3] and f[3] ~= '' then
    redis.call('SREM', 'sig:inst:' .. f[3] .. ':peers', p)
  end
  redis.call('DECR', 'sig:npeers')
  local rk = 'sig:room:' .. room
  redis.call('ZREM', rk, p)
  local members = redis.call('ZRANGE', rk, 0, -1)
  if #members == 0 then
    redis.call('SREM', 'sig:rooms', room)
    return
  end
  -- Every instance of the room forgets its route to p before the room
  -- hears peer_left, so signals to p sent after that get unknown_peer.
  local told = {}
  for _, m in ipairs(members) do
    local inst = redis.call('HGET', 'sig:peer:' .. m, 'inst')
    if inst and inst ~= '' and not told[inst] then
      told[inst] = true
      redis.call('PUBLISH', 'sig:ch:' .. inst, 'L ' .. p .. ' ' .. room)
    end
  end
  local frame = '{"type":"peer_left","peer_id":"' .. p .. '"}'
  for _, m in ipairs(members) do deliver(m, frame, false) end
end
