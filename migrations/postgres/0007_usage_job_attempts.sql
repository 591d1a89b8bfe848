-- Each attempt of a detached execution has its own usage row naming the
-- execution (job) it belongs to; only the first attempt on record is
-- charged (rate, daily quota, GetUsage's execution counts), so a job run
-- again after its replica died costs its account one execution.
ALTER TABLE usage_records ADD COLUMN job_id TEXT;
ALTER TABLE usage_records ADD COLUMN charged BIGINT NOT NULL DEFAULT 1;
CREATE INDEX usage_records_job ON usage_records(job_id) WHERE job_id IS NOT NULL;
