-- Shared by every room script (prepended to each). A script touches only
-- the keys of one room, which share one hash tag, so on a Redis Cluster a
-- room lives on one shard and each script runs there.
--
-- KEYS[1] is the room's key prefix, 'sig:{TAG}:' (TAG: a digest of the room
-- name). ARGV[1] and ARGV[2] bound an absent peer's queue (signals, bytes);
-- ARGV[3] is the room.
--
-- Keys of a room:
--   PREFIX r:ROOM        zset  member peer id, score join order
--   PREFIX n:ROOM        integer, the last join order given
--   PREFIX p:ID          hash  room, token, inst ('' when absent), conn,
--                              qbytes, until (resume deadline, ms)
--   PREFIX t:TOKEN       string peer id
--   PREFIX q:ID          list  frames queued for an absent peer
-- The keys shared by all rooms live under another tag ('sig:{ctl}:', see
-- redis_scripts.rs) and are changed by the instances with separate commands.
--
-- Scripts change nothing outside the room: they return what the instance
-- does next. Their queue changes, pairs of "PEER ROOM" and a change in
-- bytes, go into the server-wide count of absent peers' queues (see
-- ACCOUNT in redis_scripts.rs). And they publish nothing themselves (a
-- channel on another shard is out of their reach): they return their
-- deliveries, pairs of instance and
-- payload, which the caller publishes in order on each instance's channel:
-- "S PEER ROOM\nFRAME" (deliver a signal: handed on if the peer is no longer
-- there), "F PEER ROOM\nFRAME" (deliver a room event, or drop it), "R PEER CONN" (the peer resumed elsewhere:
-- close that connection) and "L PEER ROOM" (the peer left: forget the route
-- to it).
local P = KEYS[1]
local maxq = tonumber(ARGV[1])
local maxqb = tonumber(ARGV[2])
local room = ARGV[3]
local members_key = P .. 'r:' .. room
local order_key = P .. 'n:' .. room
local out = {}
local queued = {}
local emptied = 0
local remove_peer

local function peer_key(p) return P .. 'p:' .. p end
local function queue_key(p) return P .. 'q:' .. p end
local function token_key(t) return P .. 't:' .. t end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function send(inst, payload)
  out[#out + 1] = inst
  out[#out + 1] = payload
end

-- Records that p's queue grew (or shrank) by delta bytes.
local function note_queue(p, delta)
  if delta == 0 then return end
  queued[#queued + 1] = p .. ' ' .. room
  queued[#queued + 1] = tostring(delta)
end

-- The room of peer p, or nil when p is not in this room.
local function room_of(p)
  local r = redis.call('HGET', peer_key(p), 'room')
  if r == room then return r end
  return nil
end

-- Queues a frame for a peer without a connection; one past the bounds
-- evicts the peer instead.
local function enqueue(p, frame)
  local pk = peer_key(p)
  local qk = queue_key(p)
  local bytes = tonumber(redis.call('HGET', pk, 'qbytes') or '0') + #frame
  if redis.call('LLEN', qk) >= maxq or bytes > maxqb then
    remove_peer(p)
  else
    redis.call('RPUSH', qk, frame)
    redis.call('HSET', pk, 'qbytes', bytes)
    note_queue(p, #frame)
  end
end

-- Sends a frame to a present peer's instance; an absent peer gets it queued
-- (signals) or not at all (room events: welcome.peers covers them).
local function deliver(p, frame, is_signal)
  local inst = redis.call('HGET', peer_key(p), 'inst')
  if not inst then return end
  if inst ~= '' then
    local kind = 'F '
    if is_signal then kind = 'S ' end
    send(inst, kind .. p .. ' ' .. room .. '\n' .. frame)
  elseif is_signal then
    enqueue(p, frame)
  end
end

-- Drops a peer from the room and tells the rest of it.
remove_peer = function(p)
  local pk = peer_key(p)
  local f = redis.call('HMGET', pk, 'room', 'token', 'qbytes')
  if f[1] ~= room then return end
  note_queue(p, -tonumber(f[3] or '0'))
  redis.call('DEL', pk, queue_key(p), token_key(f[2]))
  redis.call('ZREM', members_key, p)
  local members = redis.call('ZRANGE', members_key, 0, -1)
  if #members == 0 then
    redis.call('DEL', members_key, order_key)
    -- When: a join admitted into the count after this brings the room back.
    emptied = now_ms()
    return
  end
  -- Every instance of the room forgets its route to p before the room
  -- hears peer_left, so signals to p sent after that get unknown_peer.
  local told = {}
  for _, m in ipairs(members) do
    local inst = redis.call('HGET', peer_key(m), 'inst')
    if inst and inst ~= '' and not told[inst] then
      told[inst] = true
      send(inst, 'L ' .. p .. ' ' .. room)
    end
  end
  local frame = '{"type":"peer_left","peer_id":"' .. p .. '"}'
  for _, m in ipairs(members) do deliver(m, frame, false) end
end

-- Puts a peer into the room, attached to an instance.
local function add_peer(p, tok, inst, conn)
  redis.call('ZADD', members_key, redis.call('INCR', order_key), p)
  redis.call('HSET', peer_key(p), 'room', room, 'token', tok, 'inst', inst, 'conn', conn, 'qbytes', 0)
  redis.call('SET', token_key(tok), p)
end
