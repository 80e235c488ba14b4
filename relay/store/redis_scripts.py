"""The Lua scripts of the Redis store: every change of state is one script, so it is atomic.

Every script gets the key prefix ``{namespace}:`` as ``ARGV[1]``; the ``{...}`` hash tag keeps all
keys of a namespace in one slot. Keys under the prefix:

``seq``                   counter for job ids (acceptance order)
``event:<event_id>``      hash: body, flag, run_id, agent_id, status, received_at, dedup_key,
                          jobs (space-separated ids of its jobs not yet pruned)
``events``                zset event_id by received_at (for ``prune``)
``dedup:<key>``           string: the event_id, expiring after the retention (``SET ... PX``)
``run:<run_id>``          hash: started_at, start_seen_at (when its RUN_STARTED was accepted, if it
                          was), events (how many events of the run are stored), ended (1 once
                          its end is stored), last_event (its last event_id until then)
``active``                zset run_id by its last event's received_at, runs not ended only
                          (for the stale-run watch)
``lease:<name>``          string: the holder of a periodic job's lease (``SET NX PX``)
``refs:<run_id>``         hash: channel -> JSON ``[channel_id, message_id]``
``cards:<run_id>``        hash: channel -> card state text
``job:<id>``              hash: event_id, run_id, channel, route, template, mode, state, attempts,
                          created_at, age_from, next_attempt_at, last_error, finished_at;
                          while inflight: entry (stream id), holder (consumer), lease_until;
                          while dead: dead_entry
``q:<len>:<run_id>:<channel>``  zset of the unfinished job ids of one (run, channel), score = id;
                          its first member is the head, the only one that may be claimed
``due``                   zset of the heads only, score = when claimable: next_attempt_at while
                          pending, lease_until while inflight (an expired lease is due again)
``jobs``                  stream + consumer group ``relay``: one entry per leased job, in the
                          holder's pending list; acked and deleted when the job leaves inflight
``dead``                  stream: one entry per dead letter, oldest first; deleted on replay
``idx:<state>:<channel>`` zset job id by created_at, per state (for ``status``)
``channels``              set of channels with jobs
``rate:<key>``            hash: tokens, ts (a token bucket shared by all replicas)
``agent_names``           hash: agent id -> JSON ``[name, fetched_at]`` (Mosaic's names, cached)
``session:<sha256 hex>``  string: a dashboard login, JSON ``[data, expires_at]``, expiring then
                          (``SET ... PXAT``); written by ``RedisStore`` directly, not by a script
``hseq``                  counter for held events' ids
``held:<group>``          zset of the ids of a group's held events not yet taken, score =
                          received_at; ids are zero-padded so that equal scores keep
                          acceptance order
``hitem:<id>``            hash: channel, route, template (if any), entry of one held event
                          not yet taken
``hgroups``               set of the groups with held events not yet taken
``taken:<key>``           list ``[received_at, entry, received_at, entry, …]`` of the held events
                          taken for one flush, in acceptance order; deleted by ``drop_held``,
                          else expiring after the retention (a flush that never finished)
``takens``                set of the keys with a ``taken:<key>`` (members whose list expired
                          are removed when ``taken_keys`` meets them)
``once:<key>``            string: a one-time claim (``claim_once``: ``SET NX PX``), written by
                          ``RedisStore`` directly
``aseq``                  counter for chat actions' audit rows
``actions``               zset of every audit row, score = its ``at``; member = the zero-padded
                          row number, ``:`` and the row as JSON (``RedisStore.record_action``),
                          so equal times list in recording order
``actions:<run_id>``      zset of one run's audit rows (the same members), expiring a retention
                          after its last row
``meta``                  hash: schema
"""

from __future__ import annotations

__all__ = ["GROUP", "SCRIPTS"]

GROUP = "relay"

_PRELUDE = """
local P = ARGV[1]
local GROUP = 'relay'
local STREAM = P .. 'jobs'
local DUE = P .. 'due'
local DEAD = P .. 'dead'
local STATES = {'dead', 'inflight', 'pending', 'sent'}

local function job_key(id) return P .. 'job:' .. id end
local function index_key(state, channel) return P .. 'idx:' .. state .. ':' .. channel end
local function queue_key(run_id, channel)
  return P .. 'q:' .. #run_id .. ':' .. run_id .. ':' .. channel
end
local function head_of(queue) return redis.call('ZRANGE', queue, 0, 0)[1] end

local function move(id, channel, from, to, created_at)
  if from then redis.call('ZREM', index_key(from, channel), id) end
  redis.call('ZADD', index_key(to, channel), created_at, id)
  redis.call('HSET', job_key(id), 'state', to)
end

local function due_score(id)
  local j = redis.call('HMGET', job_key(id), 'state', 'next_attempt_at', 'lease_until')
  if j[1] == 'inflight' and j[3] then return j[3] end
  return j[2]
end

-- After a queue changed, only its current head may be in DUE.
local function reseat(queue, before)
  local head = head_of(queue)
  if before == head then return end
  if before then redis.call('ZREM', DUE, before) end
  if head then redis.call('ZADD', DUE, due_score(head), head) end
end

-- The job leaves inflight: ack and delete its delivery entry.
local function drop_entry(id)
  local key = job_key(id)
  local entry = redis.call('HGET', key, 'entry')
  if entry then
    redis.call('XACK', STREAM, GROUP, entry)
    redis.call('XDEL', STREAM, entry)
  end
  redis.call('HDEL', key, 'entry', 'holder', 'lease_until')
end

local function row(id)
  local fields = redis.call('HGETALL', job_key(id))
  local event_id, run_id
  for i = 1, #fields, 2 do
    if fields[i] == 'event_id' then event_id = fields[i + 1] end
    if fields[i] == 'run_id' then run_id = fields[i + 1] end
  end
  fields[#fields + 1] = 'id'
  fields[#fields + 1] = id
  local body = redis.call('HGET', P .. 'event:' .. event_id, 'body')
  if body then
    fields[#fields + 1] = 'body'
    fields[#fields + 1] = body
  end
  local started = redis.call('HGET', P .. 'run:' .. run_id, 'start_seen_at')
  if started then
    fields[#fields + 1] = 'run_started_at'
    fields[#fields + 1] = started
  end
  return fields
end

local function unqueue(id, run_id, channel)
  local queue = queue_key(run_id, channel)
  local before = head_of(queue)
  redis.call('ZREM', queue, id)
  reseat(queue, before)
end

local function revive(id, now)
  local key = job_key(id)
  local j = redis.call('HMGET', key, 'state', 'run_id', 'channel', 'created_at', 'dead_entry')
  if j[1] ~= 'dead' then return 0 end
  if j[5] then redis.call('XDEL', DEAD, j[5]) end
  move(id, j[3], 'dead', 'pending', j[4])
  redis.call('HSET', key, 'attempts', 0, 'next_attempt_at', now, 'age_from', now)
  redis.call('HDEL', key, 'finished_at', 'dead_entry')
  local queue = queue_key(j[2], j[3])
  local before = head_of(queue)
  redis.call('ZADD', queue, id, id)
  reseat(queue, before)
  return 1
end
"""

_ACCEPT = """
local event_id, has_dedup, dedup_key, retention_ms = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local body, flag, run_id, agent_id, status, at = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local event_key = P .. 'event:' .. event_id
local dedup
if has_dedup == '1' then
  dedup = P .. 'dedup:' .. dedup_key
  local original = redis.call('GET', dedup)
  if original then
    if original == event_id then return {event_id, 0} end
    return {original, 1}
  end
end
if redis.call('EXISTS', event_key) == 1 then return {event_id, 0} end
if dedup then redis.call('SET', dedup, event_id, 'PX', retention_ms) end

local function add_job(channel, route, has_template, template, mode)
  local id = tostring(redis.call('INCR', P .. 'seq'))
  local key = job_key(id)
  redis.call('HSET', key, 'event_id', event_id, 'run_id', run_id, 'channel', channel,
    'route', route, 'mode', mode, 'attempts', 0, 'created_at', at, 'age_from', at,
    'next_attempt_at', at)
  if has_template == '1' then redis.call('HSET', key, 'template', template) end
  move(id, channel, nil, 'pending', at)
  redis.call('SADD', P .. 'channels', channel)
  local queue = queue_key(run_id, channel)
  local before = head_of(queue)
  redis.call('ZADD', queue, id, id)
  reseat(queue, before)
  return id
end

-- Not a job: the event waits in group `hold` with its own entry (see ``take_held``).
local function hold(group, channel, route, has_template, template, entry)
  local id = string.format('%016d', redis.call('INCR', P .. 'hseq'))
  local item = P .. 'hitem:' .. id
  redis.call('HSET', item, 'channel', channel, 'route', route, 'entry', entry)
  if has_template == '1' then redis.call('HSET', item, 'template', template) end
  redis.call('ZADD', P .. 'held:' .. group, at, id)
  redis.call('SADD', P .. 'hgroups', group)
end

-- From ARGV[12], 8 per spec: channel, route, has_template, template, mode, has_hold, hold, entry.
local ids = {}
for b = 12, #ARGV, 8 do
  local channel, route, has_template, template = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  if ARGV[b + 5] == '1' then
    hold(ARGV[b + 6], channel, route, has_template, template, ARGV[b + 7])
  else
    ids[#ids + 1] = add_job(channel, route, has_template, template, ARGV[b + 4])
  end
end

redis.call('HSET', event_key, 'body', body, 'flag', flag, 'run_id', run_id,
  'agent_id', agent_id, 'status', status, 'received_at', at, 'jobs', table.concat(ids, ' '))
if dedup then redis.call('HSET', event_key, 'dedup_key', dedup_key) end
redis.call('ZADD', P .. 'events', at, event_id)
local run = P .. 'run:' .. run_id
redis.call('HSETNX', run, 'started_at', at)
if flag == 'RUN_STARTED' then redis.call('HSETNX', run, 'start_seen_at', at) end
redis.call('HINCRBY', run, 'events', 1)
if flag == 'TEST' or flag == 'DIGEST' then
  -- a test of the endpoint, or the relay's own digest: no run to watch
elseif flag == 'RUN_FINISHED' or status == 'completed' or status == 'partial_complete'
    or status == 'failed' or status == 'cancelled' then
  redis.call('HSET', run, 'ended', 1)
  redis.call('ZREM', P .. 'active', run_id)
elseif redis.call('HEXISTS', run, 'ended') == 0 then
  redis.call('HSET', run, 'last_event', event_id)
  redis.call('ZADD', P .. 'active', at, run_id)
end
redis.call('PERSIST', P .. 'refs:' .. run_id)
redis.call('PERSIST', P .. 'cards:' .. run_id)
return {event_id, 0}
"""

_CLAIM = """
local now, lease_until, consumer = ARGV[2], ARGV[3], ARGV[5]
local limit, cap = tonumber(ARGV[4]), tonumber(ARGV[6])
local excluded = {}
for i = 7, #ARGV do excluded[ARGV[i]] = true end
pcall(redis.call, 'XGROUP', 'CREATE', STREAM, GROUP, '0', 'MKSTREAM')

-- Due heads, most overdue first, skipping excluded channels (at most `cap` looked at).
local picked, gone = {}, {}
local offset, batch = 0, math.max(limit, 100)
while #picked < limit and offset < cap do
  local ids = redis.call('ZRANGE', DUE, '-inf', now, 'BYSCORE', 'LIMIT', offset, batch)
  for _, id in ipairs(ids) do
    local channel = redis.call('HGET', job_key(id), 'channel')
    if not channel then
      gone[#gone + 1] = id
    elseif not excluded[channel] then
      picked[#picked + 1] = id
      if #picked == limit then break end
    end
  end
  if #ids < batch then break end
  offset = offset + #ids
end
for _, id in ipairs(gone) do redis.call('ZREM', DUE, id) end

-- Lease them: a pending job gets a new stream entry, read into this consumer's pending list;
-- an expired lease moves its entry from the old holder to this consumer (XCLAIM).
local claimed, fresh, waiting = {}, {}, 0
for _, id in ipairs(picked) do
  local key = job_key(id)
  local j = redis.call('HMGET', key, 'state', 'entry', 'channel', 'created_at')
  if j[1] == 'pending' or j[1] == 'inflight' then
    local entry = j[2]
    if entry then
      local got = redis.call('XCLAIM', STREAM, GROUP, consumer, 0, entry, 'JUSTID')
      if #got == 0 then
        redis.call('XDEL', STREAM, entry)
        entry = false
      end
    end
    if not entry then
      entry = redis.call('XADD', STREAM, '*', 'job', id)
      fresh[entry] = true
      waiting = waiting + 1
    end
    if j[1] ~= 'inflight' then move(id, j[3], j[1], 'inflight', j[4]) end
    redis.call('HSET', key, 'entry', entry, 'holder', consumer, 'lease_until', lease_until)
    redis.call('ZADD', DUE, lease_until, id)
    claimed[#claimed + 1] = id
  else
    redis.call('ZREM', DUE, id)
  end
end
while waiting > 0 do
  local read = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', waiting,
    'STREAMS', STREAM, '>')
  if not read then break end
  for _, message in ipairs(read[1][2]) do
    if fresh[message[1]] then
      waiting = waiting - 1
    else
      redis.call('XACK', STREAM, GROUP, message[1])
      redis.call('XDEL', STREAM, message[1])
    end
  end
end

local rows = {}
for _, id in ipairs(claimed) do rows[#rows + 1] = row(id) end
return rows
"""

_MARK_SENT = """
local id, now = ARGV[2], ARGV[3]
local key = job_key(id)
local j = redis.call('HMGET', key, 'state', 'run_id', 'channel', 'created_at')
if j[1] ~= 'pending' and j[1] ~= 'inflight' then return 0 end
drop_entry(id)
move(id, j[3], j[1], 'sent', j[4])
redis.call('HSET', key, 'finished_at', now)
redis.call('HINCRBY', key, 'attempts', 1)
unqueue(id, j[2], j[3])
return 1
"""

_MARK_DEAD = """
local id, err, now, consumer = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = job_key(id)
local j = redis.call('HMGET', key, 'state', 'run_id', 'channel', 'created_at', 'holder')
if j[1] ~= 'inflight' or j[5] ~= consumer then return 0 end
drop_entry(id)
move(id, j[3], 'inflight', 'dead', j[4])
redis.call('HSET', key, 'finished_at', now, 'last_error', err)
redis.call('HINCRBY', key, 'attempts', 1)
unqueue(id, j[2], j[3])
redis.call('HSET', key, 'dead_entry', redis.call('XADD', DEAD, '*', 'job', id))
return 1
"""

_MARK_RETRY = """
local id, next_at, err, count, consumer = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = job_key(id)
local j = redis.call('HMGET', key, 'state', 'channel', 'created_at', 'holder')
if j[1] ~= 'inflight' or j[4] ~= consumer then return 0 end
drop_entry(id)
move(id, j[2], 'inflight', 'pending', j[3])
redis.call('HSET', key, 'next_attempt_at', next_at, 'last_error', err)
redis.call('HINCRBY', key, 'attempts', count)
if redis.call('ZSCORE', DUE, id) then redis.call('ZADD', DUE, next_at, id) end
return 1
"""

_RELEASE = """
local id, consumer = ARGV[2], ARGV[3]
local key = job_key(id)
local j = redis.call('HMGET', key, 'state', 'channel', 'created_at', 'holder', 'next_attempt_at')
if j[1] ~= 'inflight' or j[4] ~= consumer then return 0 end
drop_entry(id)
move(id, j[2], 'inflight', 'pending', j[3])
if redis.call('ZSCORE', DUE, id) then redis.call('ZADD', DUE, j[5], id) end
return 1
"""

_REPLAY_ONE = """
return revive(ARGV[2], ARGV[3])
"""

_REPLAY_BATCH = """
local now, count = ARGV[2], ARGV[3]
local entries = redis.call('XRANGE', DEAD, '-', '+', 'COUNT', count)
local revived = 0
for _, entry in ipairs(entries) do
  revived = revived + revive(entry[2][2], now)
  redis.call('XDEL', DEAD, entry[1])
end
return {revived, #entries}
"""

_DEAD_LETTERS = """
local rows = {}
for _, entry in ipairs(redis.call('XRANGE', DEAD, '-', '+', 'COUNT', ARGV[2])) do
  local id = entry[2][2]
  if redis.call('HGET', job_key(id), 'state') == 'dead' then rows[#rows + 1] = row(id) end
end
return rows
"""

_HAS_NEWER = """
local queue = queue_key(ARGV[3], ARGV[4])
return #redis.call('ZRANGE', queue, '(' .. ARGV[2], '+inf', 'BYSCORE', 'LIMIT', 0, 1)
"""

_STATUS = """
local out = {}
for _, channel in ipairs(redis.call('SMEMBERS', P .. 'channels')) do
  for _, state in ipairs(STATES) do
    local key = index_key(state, channel)
    local n = redis.call('ZCARD', key)
    if n > 0 then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
      out[#out + 1] = channel
      out[#out + 1] = state
      out[#out + 1] = tostring(n)
      out[#out + 1] = oldest
    end
  end
end
return out
"""

_PRUNE_CHUNK = """
local before, offset, count = '(' .. ARGV[2], ARGV[3], ARGV[4]
local event_ids = redis.call('ZRANGE', P .. 'events', '-inf', before, 'BYSCORE',
  'LIMIT', offset, count)
local deleted, kept, touched = 0, 0, {}
for _, event_id in ipairs(event_ids) do
  local event_key = P .. 'event:' .. event_id
  local e = redis.call('HMGET', event_key, 'jobs', 'run_id', 'dedup_key')
  local open = {}
  for id in string.gmatch(e[1] or '', '%S+') do
    local j = redis.call('HMGET', job_key(id), 'state', 'channel')
    if j[1] == 'sent' then
      redis.call('DEL', job_key(id))
      redis.call('ZREM', index_key('sent', j[2]), id)
      touched[j[2]] = true
    elseif j[1] then
      open[#open + 1] = id
    end
  end
  if #open == 0 then
    redis.call('DEL', event_key)
    redis.call('ZREM', P .. 'events', event_id)
    if e[3] and redis.call('GET', P .. 'dedup:' .. e[3]) == event_id then
      redis.call('DEL', P .. 'dedup:' .. e[3])
    end
    if e[2] then
      local run = P .. 'run:' .. e[2]
      if redis.call('HINCRBY', run, 'events', -1) <= 0 then
        redis.call('DEL', run, P .. 'refs:' .. e[2], P .. 'cards:' .. e[2])
        redis.call('ZREM', P .. 'active', e[2])
      end
    end
    if e[2] then deleted = deleted + 1 end
  else
    redis.call('HSET', event_key, 'jobs', table.concat(open, ' '))
    kept = kept + 1
  end
end
for channel in pairs(touched) do
  local empty = true
  for _, state in ipairs(STATES) do
    if redis.call('EXISTS', index_key(state, channel)) == 1 then empty = false end
  end
  if empty then redis.call('SREM', P .. 'channels', channel) end
end
return {deleted, kept, #event_ids}
"""

_HELD_GROUPS = """
local out = {}
for _, group in ipairs(redis.call('SMEMBERS', P .. 'hgroups')) do
  local queue = P .. 'held:' .. group
  local first = redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('SREM', P .. 'hgroups', group)
  else
    local h = redis.call('HMGET', P .. 'hitem:' .. first[1], 'channel', 'route', 'template')
    out[#out + 1] = {group, h[1], h[2], h[3], redis.call('ZCARD', queue), first[2]}
  end
end
return out
"""

_TAKE_HELD = """
local group, before, key, retention_ms = ARGV[2], '(' .. ARGV[3], ARGV[4], ARGV[5]
local taken = P .. 'taken:' .. key
if redis.call('EXISTS', taken) == 1 then return redis.call('LRANGE', taken, 0, -1) end
local queue = P .. 'held:' .. group
local held = redis.call('ZRANGE', queue, '-inf', before, 'BYSCORE', 'WITHSCORES')
local out = {}
for i = 1, #held, 2 do
  local item = P .. 'hitem:' .. held[i]
  out[#out + 1] = held[i + 1]
  out[#out + 1] = redis.call('HGET', item, 'entry')
  redis.call('DEL', item)
end
for i = 1, #out, 1000 do  -- unpack has a stack limit
  redis.call('RPUSH', taken, unpack(out, i, math.min(i + 999, #out)))
end
if #out > 0 then
  redis.call('PEXPIRE', taken, retention_ms)
  redis.call('SADD', P .. 'takens', key)
  redis.call('ZREMRANGEBYSCORE', queue, '-inf', before)
end
if redis.call('EXISTS', queue) == 0 then redis.call('SREM', P .. 'hgroups', group) end
return out
"""

_TAKEN_KEYS = """
local out = {}
for _, key in ipairs(redis.call('SMEMBERS', P .. 'takens')) do
  if redis.call('EXISTS', P .. 'taken:' .. key) == 1 then
    out[#out + 1] = key
  else
    redis.call('SREM', P .. 'takens', key)
  end
end
return out
"""

_DROP_HELD = """
redis.call('DEL', P .. 'taken:' .. ARGV[2])
redis.call('SREM', P .. 'takens', ARGV[2])
return 1
"""

_QUIET_RUNS = """
local quiet = redis.call('ZRANGE', P .. 'active', '-inf', '(' .. ARGV[2], 'BYSCORE',
  'LIMIT', 0, ARGV[3], 'WITHSCORES')
local out = {}
for i = 1, #quiet, 2 do
  local run_id = quiet[i]
  local last = redis.call('HGET', P .. 'run:' .. run_id, 'last_event')
  local e = last and redis.call('HMGET', P .. 'event:' .. last, 'agent_id', 'body') or {}
  if e[2] then
    out[#out + 1] = {run_id, quiet[i + 1], e[1], e[2]}
  end
end
return out
"""

_PUT_RUN_FIELD = """
local key = P .. ARGV[2] .. ':' .. ARGV[3]
redis.call('HSET', key, ARGV[4], ARGV[5])
if redis.call('EXISTS', P .. 'run:' .. ARGV[3]) == 1 then
  redis.call('PERSIST', key)
else
  redis.call('PEXPIRE', key, ARGV[6])
end
return 1
"""

_RECORD_ACTION = """
local at, run_id, row, cutoff, ttl = ARGV[2], ARGV[3], ARGV[4], '(' .. ARGV[5], ARGV[6]
local member = string.format('%016d', redis.call('INCR', P .. 'aseq')) .. ':' .. row
local run = P .. 'actions:' .. run_id
redis.call('ZADD', P .. 'actions', at, member)
redis.call('ZADD', run, at, member)
redis.call('ZREMRANGEBYSCORE', P .. 'actions', '-inf', cutoff)
redis.call('ZREMRANGEBYSCORE', run, '-inf', cutoff)
redis.call('PEXPIRE', run, ttl)
return 1
"""

_PRUNE_ACTIONS = """
local before, count = '(' .. ARGV[2], ARGV[3]
local members = redis.call('ZRANGE', P .. 'actions', '-inf', before, 'BYSCORE', 'LIMIT', 0, count)
for _, member in ipairs(members) do
  local row = cjson.decode(string.sub(member, 18))
  redis.call('ZREM', P .. 'actions:' .. row[3], member)
  redis.call('ZREM', P .. 'actions', member)
end
return #members
"""

_FORGET_CONSUMER = """
local ok, pending = pcall(redis.call, 'XPENDING', STREAM, GROUP, '-', '+', 1, ARGV[2])
if ok and #pending == 0 then
  redis.call('XGROUP', 'DELCONSUMER', STREAM, GROUP, ARGV[2])
  return 1
end
return 0
"""

_FORGET_IDLE_CONSUMERS = """
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', STREAM, GROUP)
if not ok then return 0 end
local forgotten = 0
for _, consumer in ipairs(consumers) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  if info['pending'] == 0 then
    redis.call('XGROUP', 'DELCONSUMER', STREAM, GROUP, info['name'])
    forgotten = forgotten + 1
  end
end
return forgotten
"""

# The token bucket of ``relay.delivery.ratelimit.RateLimiter.try_acquire``, shared by replicas; the same
# table of cases tests both.
_ACQUIRE_RATE = """
local key = P .. 'rate:' .. ARGV[2]
local rate, burst, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local bucket = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(bucket[1]) or burst
local ts = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = (1 - tokens) / rate
if tokens >= 1 or now + wait <= now then  -- ready within the clock's resolution
  tokens = math.max(0, tokens - 1)
  wait = 0
end
redis.call('HSET', key, 'tokens', string.format('%.17g', tokens),
  'ts', string.format('%.17g', math.max(ts, now)))
redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
return string.format('%.17g', wait)
"""

SCRIPTS: dict[str, str] = {
    name: _PRELUDE + body
    for name, body in {
        "accept": _ACCEPT,
        "claim": _CLAIM,
        "mark_sent": _MARK_SENT,
        "mark_dead": _MARK_DEAD,
        "mark_retry": _MARK_RETRY,
        "release": _RELEASE,
        "replay_one": _REPLAY_ONE,
        "replay_batch": _REPLAY_BATCH,
        "dead_letters": _DEAD_LETTERS,
        "has_newer": _HAS_NEWER,
        "status": _STATUS,
        "prune_chunk": _PRUNE_CHUNK,
        "put_run_field": _PUT_RUN_FIELD,
        "quiet_runs": _QUIET_RUNS,
        "held_groups": _HELD_GROUPS,
        "take_held": _TAKE_HELD,
        "taken_keys": _TAKEN_KEYS,
        "drop_held": _DROP_HELD,
        "forget_consumer": _FORGET_CONSUMER,
        "forget_idle_consumers": _FORGET_IDLE_CONSUMERS,
        "acquire_rate": _ACQUIRE_RATE,
        "record_action": _RECORD_ACTION,
        "prune_actions": _PRUNE_ACTIONS,
    }.items()
}
"""Script name -> Lua source."""
