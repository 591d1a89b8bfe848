-- Only the sweep for rows a crash left RUNNING looked rows up by outcome:
-- index just those (most rows are written once, already finished, and then
-- never enter it) instead of every row's outcome.
DROP INDEX usage_outcome;
CREATE INDEX usage_running ON usage_records(started_at) WHERE outcome = 'RUNNING';
