//! The Lua scripts of the Redis broker. Every change to a room is one room
//! script, so it is atomic: concurrent joins cannot overfill a room and a
//! resume cannot race an expiry. `scripts.lua` (prepended to each room
//! script) holds the room's key layout and the functions they share; every
//! room script answers `{status, detail, list, backlog, deliveries,
//! emptied, queued}` (`RoomReply` in `redis_broker/room_reply.rs`;
//! `emptied` is when the room's last peer left, 0 if it did not).
//!
//! What all rooms share lives under the control tag, `sig:{ctl}:`, on one
//! shard, changed by separate commands (never inside a room script, which
//! may run on another shard):
//!   sig:{ctl}:room_admits    zset  room names, score the last join admitted
//!                                  into the room (ms): bounds the number of rooms
//!   sig:{ctl}:inst:INST      set   "PEER ROOM" of the peers an instance
//!                                  attached (to remove them if it dies)
//!   sig:{ctl}:absent         zset  "PEER ROOM", score resume deadline (ms)
//!   sig:{ctl}:queues         zset  "PEER ROOM", score bytes queued for that absent peer
//!   sig:{ctl}:queued         integer, bytes queued for all absent peers
//!   sig:{ctl}:instances      set   instance ids
//!   sig:{ctl}:alive:INST     string, expires unless the instance refreshes it
//!   sig:{ctl}:load           hash  instance → peers attached to it
//!   sig:{ctl}:epoch          string, set once per data set: a new value means
//!                                  Redis lost its data and instances restore theirs
//! Each instance reads its own sharded channel, `sig:{i:INST}:ch`.

/// Joins a room or resumes a peer in it. ARGV[4..]: resume token (or ''),
/// fresh peer id, fresh token, instance, connection, the room's peer limit,
/// the `peer_joined` frame for the others. Status `joined` or `resumed`
/// (detail: the peer id; list: the others; backlog: frames queued while
/// absent) or `room_full`.
pub(super) const JOIN: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local resume, pid, tok, inst, conn = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local function others(me)
  local list = {}
  for _, m in ipairs(redis.call('ZRANGE', members_key, 0, -1)) do
    if m ~= me then table.insert(list, m) end
  end
  return list
end
if resume ~= '' then
  local old = redis.call('GET', token_key(resume))
  if old and room_of(old) then
    local pk = peer_key(old)
    local f = redis.call('HMGET', pk, 'inst', 'conn')
    redis.call('DEL', token_key(resume))
    redis.call('SET', token_key(tok), old)
    if f[1] ~= '' and f[1] ~= inst then send(f[1], 'R ' .. old .. ' ' .. f[2]) end
    note_queue(old, -tonumber(redis.call('HGET', pk, 'qbytes') or '0'))
    redis.call('HSET', pk, 'token', tok, 'inst', inst, 'conn', conn, 'qbytes', 0)
    redis.call('HDEL', pk, 'until')
    local qk = queue_key(old)
    local backlog = redis.call('LRANGE', qk, 0, -1)
    redis.call('DEL', qk)
    return {'resumed', old, others(old), backlog, out, emptied, queued}
  end
end
local members = redis.call('ZRANGE', members_key, 0, -1)
if #members >= tonumber(ARGV[9]) then return {'room_full', '', {}, {}, out, emptied, queued} end
add_peer(pid, tok, inst, conn)
for _, m in ipairs(members) do deliver(m, ARGV[10], false) end
return {'joined', pid, members, {}, out, emptied, queued}
"#
);

/// A signal for a peer without a known route. ARGV[4..]: from, to, frame.
/// Checks both ends are in the room, delivers or queues it; status `ok`
/// (detail: the addressee's instance, '' when absent), `not_joined` or
/// `unknown_peer`.
pub(super) const SIGNAL: &str = concat!(
    include_str!("scripts.lua"),
    r#"
if not room_of(ARGV[4]) then return {'not_joined', '', {}, {}, out, emptied, queued} end
if not room_of(ARGV[5]) then return {'unknown_peer', '', {}, {}, out, emptied, queued} end
deliver(ARGV[5], ARGV[6], true)
return {'ok', redis.call('HGET', peer_key(ARGV[5]), 'inst') or '', {}, {}, out, emptied, queued}
"#
);

/// A frame reached an instance that no longer holds its peer, or reached no
/// instance at all. ARGV[4..]: peer, frame, that instance, and 1 when that
/// instance may still hold the peer connected (it is alive and only heard
/// nothing while resubscribing) or 0. Forwards the frame to where the peer
/// is now, or queues it when the peer is (about to be) absent; drops it for
/// a peer a live instance may still hold.
pub(super) const REDELIVER: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local inst = redis.call('HGET', peer_key(ARGV[4]), 'inst')
if inst and room_of(ARGV[4]) then
  if inst == '' or (inst == ARGV[6] and ARGV[7] == '0') then
    enqueue(ARGV[4], ARGV[5])
  elseif inst ~= ARGV[6] then
    deliver(ARGV[4], ARGV[5], true)
  end
end
return {'ok', '', {}, {}, out, emptied, queued}
"#
);

/// A peer leaves. ARGV[4..]: peer, instance, connection (a stale
/// connection's leave changes nothing).
pub(super) const LEAVE: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local f = redis.call('HMGET', peer_key(ARGV[4]), 'inst', 'conn')
if f[1] == ARGV[5] and f[2] == ARGV[6] then remove_peer(ARGV[4]) end
return {'ok', '', {}, {}, out, emptied, queued}
"#
);

/// A peer's connection ended: it is absent, resumable for ARGV[7] ms.
/// ARGV[4..]: peer, instance, connection, grace.
pub(super) const DISCONNECT: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local pk = peer_key(ARGV[4])
local f = redis.call('HMGET', pk, 'inst', 'conn')
if f[1] == ARGV[5] and f[2] == ARGV[6] then
  redis.call('HSET', pk, 'inst', '', 'conn', '', 'until', now_ms() + tonumber(ARGV[7]))
end
return {'ok', '', {}, {}, out, emptied, queued}
"#
);

/// An absent peer's resume deadline may have passed. ARGV[4]: the peer.
/// Status `expired` when it left, `later` while its deadline has not passed
/// (the entry stays due), `done` when it is no longer absent.
pub(super) const EXPIRE: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local f = redis.call('HMGET', peer_key(ARGV[4]), 'inst', 'until')
if f[1] == '' then
  if tonumber(f[2] or '0') > now_ms() then return {'later', '', {}, {}, out, emptied, queued} end
  remove_peer(ARGV[4])
  return {'expired', '', {}, {}, out, emptied, queued}
end
return {'done', '', {}, {}, out, emptied, queued}
"#
);

/// A peer of an instance taken for dead leaves, unless it resumed
/// elsewhere meanwhile. ARGV[4..]: peer, the dead instance. Status
/// `removed` or `kept`.
pub(super) const ORPHAN: &str = concat!(
    include_str!("scripts.lua"),
    r#"
if redis.call('HGET', peer_key(ARGV[4]), 'inst') ~= ARGV[5] then return {'kept', '', {}, {}, out, emptied, queued} end
remove_peer(ARGV[4])
return {'removed', '', {}, {}, out, emptied, queued}
"#
);

/// An absent peer is evicted to keep the absent peers' queues within the
/// server-wide budget. ARGV[4]: the peer. Status `evicted`, or `kept` when
/// it is no longer absent, with the bytes it still has queued as detail (0
/// when it is gone), to set its count right.
pub(super) const EVICT: &str = concat!(
    include_str!("scripts.lua"),
    r#"
if redis.call('HGET', peer_key(ARGV[4]), 'inst') ~= '' then
  return {'kept', redis.call('HGET', peer_key(ARGV[4]), 'qbytes') or '0', {}, {}, out, emptied, queued}
end
remove_peer(ARGV[4])
return {'evicted', '', {}, {}, out, emptied, queued}
"#
);

/// Adds room scripts' queue changes to the server-wide count and answers
/// which absent peers ("PEER ROOM") to evict, largest queue first, to bring
/// the count within the budget. KEYS[1] is the control prefix; ARGV: the
/// budget in bytes, then pairs of entry and change in bytes, or `=N` for
/// what the peer's queue holds now.
pub(super) const ACCOUNT: &str = r#"
local C, budget = KEYS[1], tonumber(ARGV[1])
local total = tonumber(redis.call('GET', C .. 'queued') or '0')
for i = 2, #ARGV - 1, 2 do
  local delta = ARGV[i + 1]
  if string.sub(delta, 1, 1) == '=' then
    delta = tonumber(string.sub(delta, 2)) - tonumber(redis.call('ZSCORE', C .. 'queues', ARGV[i]) or '0')
  else
    delta = tonumber(delta)
  end
  local bytes = tonumber(redis.call('ZINCRBY', C .. 'queues', delta, ARGV[i]))
  if bytes <= 0 then
    redis.call('ZREM', C .. 'queues', ARGV[i])
    delta = delta - bytes
  end
  total = total + delta
end
if total < 0 then total = 0 end
redis.call('SET', C .. 'queued', total)
local evict = {}
local over = total - budget
if over > 0 then
  for _, e in ipairs(redis.call('ZREVRANGE', C .. 'queues', 0, 63, 'WITHSCORES')) do
    if over <= 0 then break end
    if #evict % 2 == 0 then evict[#evict + 1] = e else over = over - tonumber(e); evict[#evict + 1] = e end
  end
end
local names = {}
for i = 1, #evict, 2 do names[#names + 1] = evict[i] end
return names
"#;

/// Puts peers attached to this instance back after Redis lost its data
/// (restarted empty): each in the room with its token, as they were.
/// ARGV[4] is the instance, then three values a peer: id, token,
/// connection. A peer already there (it joined again meanwhile) is left
/// alone. Detail: how many were put back.
pub(super) const RESTORE: &str = concat!(
    include_str!("scripts.lua"),
    r#"
local restored = 0
for i = 5, #ARGV - 2, 3 do
  if redis.call('EXISTS', peer_key(ARGV[i])) == 0 then
    add_peer(ARGV[i], ARGV[i + 1], ARGV[4], ARGV[i + 2])
    restored = restored + 1
  end
end
return {'ok', tostring(restored), {}, {}, out, emptied, queued}
"#
);

/// Forgets an absent peer's deadline ("PEER ROOM", ARGV[1]) if it is still
/// the one read (ARGV[2]): a peer that went absent again meanwhile has a
/// later one, which stays. KEYS[1] is the control prefix.
pub(super) const FORGET_DEADLINE: &str = r#"
if redis.call('ZSCORE', KEYS[1] .. 'absent', ARGV[1]) == ARGV[2] then
  return redis.call('ZREM', KEYS[1] .. 'absent', ARGV[1])
end
return 0
"#;

/// Admits a join into the shared counts before its room script runs.
/// KEYS[1] is the control prefix; ARGV: room, the limit of rooms, instance,
/// "PEER ROOM". 0 when the room is new and there are already as many rooms
/// as allowed. The room's score becomes now, so [`FORGET_ROOM`] leaves it
/// counted while this join is on its way to the room's shard.
pub(super) const ADMIT: &str = r#"
local C = KEYS[1]
local rooms = C .. 'room_admits'
if not redis.call('ZSCORE', rooms, ARGV[1])
  and redis.call('ZCARD', rooms) >= tonumber(ARGV[2]) then
  return 0
end
local t = redis.call('TIME')
redis.call('ZADD', rooms, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
redis.call('SADD', C .. 'inst:' .. ARGV[3], ARGV[4])
return 1
"#;

/// Drops a room that emptied or vanished from the count, unless a join was
/// admitted into it after ARGV[2] (ms since the epoch): that join may not
/// have reached the room yet (the count and the room live on different
/// shards), and it brings the room back. KEYS[1] is the control prefix;
/// ARGV[1] the room. 1 when dropped.
pub(super) const FORGET_ROOM: &str = r#"
local rooms = KEYS[1] .. 'room_admits'
local admitted = redis.call('ZSCORE', rooms, ARGV[1])
if not admitted or tonumber(admitted) > tonumber(ARGV[2]) then return 0 end
return redis.call('ZREM', rooms, ARGV[1])
"#;

/// Counts rooms again after Redis lost its data. KEYS[1] is the control
/// prefix; ARGV: room names. Each gets now as its score, unless counted already.
pub(super) const RESTORE_ROOMS: &str = r#"
local rooms = KEYS[1] .. 'room_admits'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, room in ipairs(ARGV) do redis.call('ZADD', rooms, 'NX', now, room) end
return #ARGV
"#;

/// Refreshes this instance's liveness and load, and answers what needs
/// doing: `{rooms, peers, epoch, due, orphans, sample, queued}`. KEYS[1] is the
/// control prefix; ARGV: instance, liveness (ms), batch, a fresh epoch,
/// this instance's peer count.
/// - `due`: up to a batch of absent peers ("PEER ROOM") whose deadline passed,
///   each followed by that deadline as recorded;
/// - `orphans`: pairs of a dead instance and one of its peers ("PEER ROOM");
///   a dead instance without peers left is forgotten here;
/// - `sample`: a few room names, to check they still exist;
/// - `queued`: bytes queued for absent peers, all instances together;
/// - `epoch` (`sig:{ctl}:epoch`, set to the fresh one when missing) changes
///   only when Redis lost its data: then every instance puts its peers back.
pub(super) const MAINTAIN: &str = r#"
local C, me, batch = KEYS[1], ARGV[1], tonumber(ARGV[3])
redis.call('SET', C .. 'epoch', ARGV[4], 'NX')
redis.call('SET', C .. 'alive:' .. me, '1', 'PX', tonumber(ARGV[2]))
redis.call('SADD', C .. 'instances', me)
redis.call('HSET', C .. 'load', me, ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', C .. 'absent', '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
local orphans = {}
for _, inst in ipairs(redis.call('SMEMBERS', C .. 'instances')) do
  if inst ~= me and redis.call('EXISTS', C .. 'alive:' .. inst) == 0 then
    local entries = redis.call('SRANDMEMBER', C .. 'inst:' .. inst, batch)
    if #entries == 0 then
      redis.call('SREM', C .. 'instances', inst)
      redis.call('HDEL', C .. 'load', inst)
    end
    for _, e in ipairs(entries) do
      orphans[#orphans + 1] = inst
      orphans[#orphans + 1] = e
    end
  end
end
local peers = redis.call('ZCARD', C .. 'absent')
for _, n in ipairs(redis.call('HVALS', C .. 'load')) do peers = peers + tonumber(n) end
return {redis.call('ZCARD', C .. 'room_admits'), peers, redis.call('GET', C .. 'epoch'), due, orphans,
  redis.call('ZRANDMEMBER', C .. 'room_admits', 8), tonumber(redis.call('GET', C .. 'queued') or '0')}
"#;
