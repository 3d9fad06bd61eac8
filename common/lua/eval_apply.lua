-- Applies one event's increments to the evaluation counters, once per message id, so a
-- redelivered or replayed event is not counted twice.
-- KEYS[1] set of applied message ids, KEYS[2] territory counters hash,
-- KEYS[3] total counters hash, KEYS[4] set of territories
-- ARGV[1] message id, ARGV[2] territory, ARGV[3..] field, increment...
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('SADD', KEYS[4], ARGV[2])
return 1
