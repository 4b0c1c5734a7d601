//! The Lua scripts of the Redis broker: every change to shared room state is
//! one of them, so it is atomic. `scripts.lua` (prepended to each) holds the
//! key layout and the functions they share.

pub(super) const JOIN: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local room, resume, pid, tok, inst, conn = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local rk = 'sig:room:' .. room
local function others(me)
  local list = {}
  for _, m in ipairs(redis.call('ZRANGE', rk, 0, -1)) do
    if m ~= me then table.insert(list, m) end
  end
  return list
end
if resume ~= '' then
  local old = redis.call('GET', 'sig:token:' .. resume)
  if old then
    local pk = 'sig:peer:' .. old
    local f = redis.call('HMGET', pk, 'room', 'inst', 'conn')
    if f[1] == room then
      redis.call('DEL', 'sig:token:' .. resume)
      redis.call('SET', 'sig:token:' .. tok, old)
      if f[2] ~= '' then
        redis.call('SREM', 'sig:inst:' .. f[2] .. ':peers', old)
        if f[2] ~= inst then
          redis.call('PUBLISH', 'sig:ch:' .. f[2], 'R ' .. old .. ' ' .. f[3])
        end
      end
      redis.call('HSET', pk, 'token', tok, 'inst', inst, 'conn', conn, 'qbytes', 0)
      redis.call('SADD', 'sig:inst:' .. inst .. ':peers', old)
      redis.call('ZREM', 'sig:absent', old)
      local qk = 'sig:queue:' .. old
      local backlog = redis.call('LRANGE', qk, 0, -1)
      redis.call('DEL', qk)
      return {'resumed', old, others(old), backlog}
    end
  end
end
local n = redis.call('ZCARD', rk)
if n >= tonumber(ARGV[9]) then return {'room_full', '', {}, {}} end
if n == 0 and redis.call('SCARD', 'sig:rooms') >= tonumber(ARGV[10]) then
  return {'too_many_rooms', '', {}, {}}
end
local members = redis.call('ZRANGE', rk, 0, -1)
redis.call('ZADD', rk, redis.call('INCR', 'sig:seq'), pid)
redis.call('SADD', 'sig:rooms', room)
redis.call('HSET', 'sig:peer:' .. pid, 'room', room, 'token', tok, 'inst', inst, 'conn', conn, 'qbytes', 0)
redis.call('SET', 'sig:token:' .. tok, pid)
redis.call('SADD', 'sig:inst:' .. inst .. ':peers', pid)
redis.call('INCR', 'sig:npeers')
for _, m in ipairs(members) do deliver(m, ARGV[11], false) end
return {'joined', pid, members, {}}
"#
);

/// A signal for a peer without a known route: checks both ends are in one
/// room, delivers or queues it, and answers `{status, instance}` so the
/// sender's instance can route the next ones itself.
pub(super) const SIGNAL: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local from_room = redis.call('HGET', 'sig:peer:' .. ARGV[3], 'room')
if not from_room then return {'not_joined', ''} end
if redis.call('HGET', 'sig:peer:' .. ARGV[4], 'room') ~= from_room then
  return {'unknown_peer', from_room}
end
deliver(ARGV[4], ARGV[5], true)
return {'ok', redis.call('HGET', 'sig:peer:' .. ARGV[4], 'inst') or ''}
"#
);

/// A frame arrived here for a peer this instance no longer holds: forward
/// it to where the peer is now, or queue it when the peer is (about to be)
/// absent.
pub(super) const REDELIVER: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local inst = redis.call('HGET', 'sig:peer:' .. ARGV[3], 'inst')
if not inst then return 0 end
if inst == ARGV[5] or inst == '' then enqueue(ARGV[3], ARGV[4]) else deliver(ARGV[3], ARGV[4], true) end
return 1
"#
);

pub(super) const LEAVE: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local f = redis.call('HMGET', 'sig:peer:' .. ARGV[3], 'inst', 'conn')
if f[1] ~= ARGV[4] or f[2] ~= ARGV[5] then return 0 end
remove_peer(ARGV[3])
return 1
"#
);

pub(super) const DISCONNECT: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local pk = 'sig:peer:' .. ARGV[3]
local f = redis.call('HMGET', pk, 'inst', 'conn')
if f[1] ~= ARGV[4] or f[2] ~= ARGV[5] then return 0 end
redis.call('HSET', pk, 'inst', '', 'conn', '')
redis.call('SREM', 'sig:inst:' .. ARGV[4] .. ':peers', ARGV[3])
redis.call('ZADD', 'sig:absent', now_ms() + tonumber(ARGV[6]), ARGV[3])
return 1
"#
);

/// Refreshes this instance's liveness, removes expired absent peers and the
/// peers of dead instances, and reports the totals for the gauges and the
/// data set's epoch: `{rooms, peers, expired, orphaned, epoch}`. The epoch
/// (`sig:epoch`, set to ARGV[6] when missing) changes only when Redis lost
/// its data: then every instance puts its peers back (`RESTORE`).
pub(super) const MAINTAIN: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local me, liveness, batch = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('SET', 'sig:epoch', ARGV[6], 'NX')
redis.call('SET', 'sig:alive:' .. me, '1', 'PX', liveness)
redis.call('SADD', 'sig:instances', me)
local due = redis.call('ZRANGEBYSCORE', 'sig:absent', '-inf', now_ms(), 'LIMIT', 0, batch)
for _, p in ipairs(due) do remove_peer(p) end
local orphaned = 0
for _, inst in ipairs(redis.call('SMEMBERS', 'sig:instances')) do
  if inst ~= me and redis.call('EXISTS', 'sig:alive:' .. inst) == 0 then
    local sk = 'sig:inst:' .. inst .. ':peers'
    for _, p in ipairs(redis.call('SMEMBERS', sk)) do
      if redis.call('HGET', 'sig:peer:' .. p, 'inst') == inst then
        remove_peer(p)
        orphaned = orphaned + 1
      end
    end
    redis.call('DEL', sk)
    redis.call('SREM', 'sig:instances', inst)
  end
end
return {redis.call('SCARD', 'sig:rooms'), tonumber(redis.call('GET', 'sig:npeers') or '0'), #due, orphaned,
  redis.call('GET', 'sig:epoch')}
"#
);

/// Puts peers attached to this instance back after Redis lost its data
/// (restarted empty): each in its room with its token, as they were.
/// ARGV[3] is the instance, then four values a peer: room, id, token,
/// connection. A peer already there (it joined again meanwhile) is left
/// alone. Answers how many were put back.
pub(super) const RESTORE: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local inst = ARGV[3]
local restored = 0
for i = 4, #ARGV - 3, 4 do
  local room, pid, tok, conn = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local pk = 'sig:peer:' .. pid
  if redis.call('EXISTS', pk) == 0 then
    redis.call('ZADD', 'sig:room:' .. room, redis.call('INCR', 'sig:seq'), pid)
    redis.call('SADD', 'sig:rooms', room)
    redis.call('HSET', pk, 'room', room, 'token', tok, 'inst', inst, 'conn', conn, 'qbytes', 0)
    redis.call('SET', 'sig:token:' .. tok, pid)
    redis.call('SADD', 'sig:inst:' .. inst .. ':peers', pid)
    redis.call('INCR', 'sig:npeers')
    restored = restored + 1
  end
end
return restored
"#
);
