-- Up Migration
-- not_yet: the step answered "not yet" (ctx.retryLater, an HTTP step's Retry-After) at
-- least once. Such an answer gives its attempt back, so the job's attempt count alone
-- cannot tell whether the step ever ran; a cancel or a passed deadline must compensate a
-- step that ran (it may have started work elsewhere: the usual reason for "not yet" is
-- polling something it started). NULL (the null bitmap's bit, no bytes) until then.
ALTER TABLE steps ADD COLUMN not_yet boolean;

-- Down Migration
ALTER TABLE steps DROP COLUMN not_yet;
