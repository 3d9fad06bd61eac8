-- Stores a funded business's yearly follow-up report and records its event in the
-- outbox in one step (intake alone): a follow-up is stored if and only if its event is
-- kept for the evaluation, even when intake dies right after (docs/architecture.md).
-- KEYS[1] dossier hash, KEYS[2] the outbox
-- ARGV[1] field (followup_<year>), ARGV[2] the packed qp.v1.FollowUp, ARGV[3] outbox
-- deadline (ms), ARGV[4] outbox member ('' when the caller publishes nothing)
-- Returns {1} stored, {0} no such dossier, {2, state} the dossier is not FUNDED.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0} end
if state ~= 'FUNDED' then return {2, state} end
-- The ZADD before the HSET: a script is not rolled back, so the write that can still
-- fail (an outbox key of the wrong type) goes first and leaves nothing behind.
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1}
