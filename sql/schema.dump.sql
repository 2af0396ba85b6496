-- The installed engine schema as scripts/schema-dump.ts describes it (function bodies as
-- md5 of their source). Rewritten by `npm run db:dump`; test/schema-dump.test.ts checks a
-- fresh install and an upgraded one against it.

-- columns
jobs.attempt integer not null default 0
jobs.available_at timestamp with time zone not null
jobs.cancel_compensate boolean not null default false
jobs.cancel_requested boolean not null default false
jobs.claimed_at timestamp with time zone
jobs.created_at timestamp with time zone not null default now()
jobs.current_step integer not null default 0
jobs.deadline timestamp with time zone
jobs.failed_step integer
jobs.finished_at timestamp with time zone
jobs.id bigint not null
jobs.key text
jobs.last_error jsonb
jobs.lease_token uuid
jobs.locked_by text
jobs.phase text not null default 'forward'::text
jobs.priority integer not null default 0
jobs.queue text not null default 'default'::text
jobs.rate_key text
jobs.status text not null default 'pending'::text
jobs.step_count integer not null
jobs.step_name text not null
jobs.trace_parent text
jobs.trace_state text
jobs.updated_at timestamp with time zone not null default now()
pgmigrations.id integer not null default nextval('<schema>.pgmigrations_id_seq'::regclass)
pgmigrations.name character varying(255) not null
pgmigrations.run_on timestamp without time zone not null
queue_limits.max_running integer
queue_limits.queue text not null
queue_limits.rate_count integer
queue_limits.rate_per_key boolean not null default false
queue_limits.rate_period_ms integer
queue_limits.updated_at timestamp with time zone not null default now()
queue_running.job_id bigint not null
queue_running.queue text not null
queue_starts.queue text not null
queue_starts.rate_key text
queue_starts.started_at timestamp with time zone not null
schedules.backfill integer not null default 0
schedules.created_at timestamp with time zone not null default now()
schedules.cron text not null
schedules.job jsonb not null
schedules.last_job_id bigint
schedules.last_run_at timestamp with time zone
schedules.name text not null
schedules.next_run_at timestamp with time zone
schedules.paused boolean not null default false
schedules.tz text not null default 'UTC'::text
schedules.updated_at timestamp with time zone not null default now()
settings.clock_offset interval not null default '00:00:00'::interval
settings.fingerprint text
settings.singleton boolean not null default true
steps.args jsonb not null
steps.attempts integer not null default 0
steps.backoff_base_ms integer
steps.backoff_max_ms integer
steps.comp_attempts integer not null default 0
steps.comp_finished_at timestamp with time zone
steps.comp_last_error jsonb
steps.comp_status text
steps.compensate_args jsonb
steps.compensate_from_failure boolean not null default false
steps.compensate_name text
steps.finished_at timestamp with time zone
steps.idx integer not null
steps.job_id bigint not null
steps.last_error jsonb
steps.max_attempts integer
steps.name text not null
steps.not_yet boolean
steps.result jsonb
steps.status text not null default 'pending'::text
workers.concurrency integer not null
workers.heartbeat_at timestamp with time zone not null
workers.heartbeat_period_ms integer not null
workers.host text not null
workers.id text not null
workers.pid integer not null
workers.queues text[]
workers.started_at timestamp with time zone not null
workers.step_names text[] not null

-- table options
jobs fillfactor=85
steps fillfactor=85

-- constraints
jobs jobs_phase_check CHECK ((phase = ANY (ARRAY['forward'::text, 'compensate'::text])))
jobs jobs_pkey PRIMARY KEY (id)
jobs jobs_rate_key_length CHECK (((length(rate_key) >= 1) AND (length(rate_key) <= 500)))
jobs jobs_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'compensated'::text, 'cancelled'::text])))
jobs jobs_step_count_check CHECK ((step_count > 0))
jobs jobs_trace_parent_w3c CHECK ((trace_parent ~ '^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$'::text))
jobs jobs_trace_state_bounded CHECK (((trace_state IS NULL) OR (((length(trace_state) >= 1) AND (length(trace_state) <= 512)) AND (trace_state ~ '^[ -~]*$'::text) AND (trace_parent IS NOT NULL))))
pgmigrations pgmigrations_pkey PRIMARY KEY (id)
queue_limits queue_limit_max_running CHECK ((max_running > 0))
queue_limits queue_limit_queue_length CHECK (((length(queue) >= 1) AND (length(queue) <= 100)))
queue_limits queue_limit_rate_count CHECK ((rate_count > 0))
queue_limits queue_limit_rate_pair CHECK (((rate_count IS NULL) = (rate_period_ms IS NULL)))
queue_limits queue_limit_rate_per_key CHECK (((NOT rate_per_key) OR (rate_count IS NOT NULL)))
queue_limits queue_limit_rate_period CHECK ((rate_period_ms > 0))
queue_limits queue_limit_some CHECK (((max_running IS NOT NULL) OR (rate_count IS NOT NULL)))
queue_limits queue_limits_pkey PRIMARY KEY (queue)
queue_running queue_running_pkey PRIMARY KEY (queue, job_id)
queue_running queue_running_queue_fkey FOREIGN KEY (queue) REFERENCES <schema>.queue_limits(queue) ON DELETE CASCADE
queue_starts queue_starts_queue_fkey FOREIGN KEY (queue) REFERENCES <schema>.queue_limits(queue) ON DELETE CASCADE
schedules schedule_backfill_range CHECK (((backfill >= 0) AND (backfill <= 1000)))
schedules schedule_cron_length CHECK (((length(cron) >= 1) AND (length(cron) <= 200)))
schedules schedule_name_length CHECK (((length(name) >= 1) AND (length(name) <= 200)))
schedules schedule_tz_length CHECK (((length(tz) >= 1) AND (length(tz) <= 100)))
schedules schedules_pkey PRIMARY KEY (name)
settings settings_pkey PRIMARY KEY (singleton)
settings settings_singleton_check CHECK (singleton)
steps step_name_length CHECK (((length(name) >= 1) AND (length(name) <= 200)))
steps steps_backoff_positive CHECK (((backoff_base_ms > 0) AND (backoff_max_ms > 0)))
steps steps_comp_status_check CHECK ((comp_status = ANY (ARRAY['pending'::text, 'succeeded'::text])))
steps steps_max_attempts_check CHECK (((max_attempts IS NULL) OR (max_attempts > 0)))
steps steps_pkey PRIMARY KEY (job_id, idx)
steps steps_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text, 'skipped'::text])))
workers workers_pkey PRIMARY KEY (id)

-- indexes
CREATE INDEX jobs_claimable ON <schema>.jobs USING btree (priority, available_at, id) WHERE (status = ANY (ARRAY['pending'::text, 'running'::text]))
CREATE INDEX jobs_deadline_unfinished ON <schema>.jobs USING btree (deadline) WHERE ((deadline IS NOT NULL) AND (status = ANY (ARRAY['pending'::text, 'running'::text])) AND (phase = 'forward'::text))
CREATE INDEX jobs_finished ON <schema>.jobs USING btree (finished_at) WHERE (finished_at IS NOT NULL)
CREATE INDEX queue_starts_queue_key ON <schema>.queue_starts USING btree (queue, rate_key, started_at)
CREATE INDEX schedules_due ON <schema>.schedules USING btree (next_run_at) WHERE ((NOT paused) AND (next_run_at IS NOT NULL))
CREATE UNIQUE INDEX jobs_key_unfinished ON <schema>.jobs USING btree (key) WHERE ((key IS NOT NULL) AND (status = ANY (ARRAY['pending'::text, 'running'::text])))
CREATE UNIQUE INDEX jobs_pkey ON <schema>.jobs USING btree (id)
CREATE UNIQUE INDEX pgmigrations_pkey ON <schema>.pgmigrations USING btree (id)
CREATE UNIQUE INDEX queue_limits_pkey ON <schema>.queue_limits USING btree (queue)
CREATE UNIQUE INDEX queue_running_pkey ON <schema>.queue_running USING btree (queue, job_id)
CREATE UNIQUE INDEX schedules_pkey ON <schema>.schedules USING btree (name)
CREATE UNIQUE INDEX settings_pkey ON <schema>.settings USING btree (singleton)
CREATE UNIQUE INDEX steps_pkey ON <schema>.steps USING btree (job_id, idx)
CREATE UNIQUE INDEX workers_pkey ON <schema>.workers USING btree (id)

-- types
unit (job_id bigint, lease_token uuid, step_index integer, phase text, name text, args jsonb, attempt integer, queue text, step_count integer, results jsonb, trace_parent text, trace_state text, max_attempts integer, deadline_in_ms bigint, cancel_requested boolean, fleet_limited boolean)

-- functions
_bad_input(p_what text) -> text plpgsql volatile
    1d92dea64a0db7ff4019df7813faf33f
_claim_budget(p_ids bigint[], p_budget bigint, p_first boolean) -> bigint[] sql stable
    d529e7f6d43e75109453f0f63467fb9f
_claim_lease(p_ids bigint[], p_worker text, p_now timestamp with time zone, p_lease interval) -> SETOF <schema>.unit plpgsql volatile
    ad5709dadea0f8a65f51a6e25a607b84
_claim_settle(p_job <schema>.jobs, p_now timestamp with time zone) -> text plpgsql volatile
    6c20483e593471025d489c45d2def28d
_compensation_next(p_job <schema>.jobs, p_now timestamp with time zone, p_worker text, p_names text[], p_queues text[], p_lease interval) -> <schema>.jobs plpgsql volatile
    b9c8a6ea1578598805219aeb2839548a
_compensation_of(p_comp jsonb) -> jsonb sql volatile
    c7a88de286964b1154d5bdb5c559c025
_default_backoff_base_ms() -> integer sql immutable
    56d9d61214140f04ff7254854ca6a7eb
_default_backoff_max_ms() -> integer sql immutable
    c7792f55d58236d896f2bee2af3202e2
_default_lease_ms() -> integer sql immutable
    e5f874940119e8b734e676c076d70e58
_default_maintenance_batch() -> integer sql immutable
    56d9d61214140f04ff7254854ca6a7eb
_default_maintenance_interval_ms() -> integer sql immutable
    e5f874940119e8b734e676c076d70e58
_default_prune_age_ms() -> integer sql immutable
    706d0a7b163603a2e29d01a68d69f1f2
_default_prune_limit() -> integer sql immutable
    19d323ab53a977ad9601a7dd08bf5f67
_default_queue() -> text sql immutable
    0838d33ee1b00f0c339cc961a7cff604
_default_retention_ms() -> integer sql immutable
    706d0a7b163603a2e29d01a68d69f1f2
_default_worker_heartbeat_ms() -> integer sql immutable
    19d323ab53a977ad9601a7dd08bf5f67
_done_token(p_token uuid) -> uuid sql immutable
    5e9d9d57368bf31cecb2d3ee8c65c6cc
_end_needs_worker(p_job <schema>.jobs, p_claims integer) -> boolean sql stable
    5151ded371846ce0bf5488ac524e77bf
_enqueue_int(p_job integer, p_step integer, p_field text, p_value jsonb) -> integer sql volatile
    3f4e159cdd8c830ab2ab94ef8318b22b
_enqueue_json(p_job integer, p_step integer, p_field text, p_value jsonb) -> jsonb plpgsql volatile
    b6fc2f1dbb0cbbb94b8db77b7055e092
_enqueue_reject(p_job integer, p_step integer, p_field text, p_type anyelement) -> anyelement plpgsql volatile
    3dad5f1231bdaf72a15ad75a1b4685a4
_enqueue_steps(p_job integer, p_steps jsonb) -> TABLE(idx integer, name text, args jsonb, max_attempts integer, backoff_base_ms integer, backoff_max_ms integer, compensate_name text, compensate_args jsonb) sql stable
    fe2ba96edddb34013694cb34e6ed8cb6
_enqueue_time(p_job integer, p_at_field text, p_at jsonb, p_ms_field text, p_ms jsonb, p_now timestamp with time zone, p_absent timestamp with time zone) -> timestamp with time zone sql volatile
    522462b649b11f8833649589e1ff5e39
_enqueue_timestamptz(p_job integer, p_field text, p_value jsonb) -> timestamp with time zone plpgsql volatile
    6c75f53201c1251ce15d8b3b0ab6f887
_error_record(p_error jsonb) -> jsonb sql immutable
    b8a39fb63122295f5e81457c6c8641e2
_forward_fail(p_job <schema>.jobs, p_error jsonb, p_include_from boolean, p_attempts integer, p_now timestamp with time zone) -> <schema>.jobs plpgsql volatile
    2cb5e0d674d2df93736fe39542a00250
_forward_stop(p_job <schema>.jobs, p_from integer, p_include_from boolean, p_compensate boolean, p_final text, p_now timestamp with time zone, p_worker text, p_names text[], p_queues text[], p_lease interval) -> <schema>.jobs plpgsql volatile
    85ecb86b2db5938a756a6833a54cf3ab
_is_final(p_status text) -> boolean sql immutable
    454b134c7730ce18f1f9b02aeb370b46
_job_enqueue_batch(p_jobs jsonb, p_depth integer) -> TABLE(ord integer, job_id bigint, created boolean, duplicate_refused boolean) plpgsql volatile
    dbc9af751c2ed0ad288435a2815a3609
_job_finish(p_ids bigint[], p_status text, p_now timestamp with time zone, p_success_report boolean, p_tokens uuid[]) -> SETOF <schema>.jobs plpgsql volatile
    29bb53cbce89e55c825fd303aeb64a57
_job_finish_one(p_job <schema>.jobs, p_status text, p_now timestamp with time zone) -> <schema>.jobs plpgsql volatile
    1725347aa5d576b3db3bf78c597f23b2
_job_lock(p_job_id bigint) -> <schema>.jobs plpgsql volatile
    c0c92d44823123d4785d016b40d9c189
_job_next_unit(p_job <schema>.jobs, p_idx integer, p_phase text, p_name text, p_now timestamp with time zone, p_worker text, p_names text[], p_queues text[], p_lease interval) -> <schema>.jobs plpgsql volatile
    e587eb984cf32407cd62852c9fabe090
_json_fits(p_value jsonb) -> boolean sql immutable
    ef487fe10111e71a29ac9a00debd8b9c
_lease(p_lease_ms integer) -> interval sql immutable
    148e5614957f9ed196240b90ffcb712d
_limit_max_call_json_bytes() -> integer sql immutable
    6c1d63e8484d7d9102c1ec2ba7025d58
_limit_max_claim_batch() -> integer sql immutable
    56d9d61214140f04ff7254854ca6a7eb
_limit_max_claim_results_bytes() -> integer sql immutable
    6c1d63e8484d7d9102c1ec2ba7025d58
_limit_max_date() -> timestamp with time zone sql immutable
    d055674c90e275be6c1da60ec87d6919
_limit_max_delay_ms() -> bigint sql immutable
    ca942cde37870cffb52a8ff2ea66cfa5
_limit_max_error_message_length() -> integer sql immutable
    a425ef418db87965d927699c9e4f4946
_limit_max_error_name_length() -> integer sql immutable
    65afccb79450cdb79acbae08b713a5b8
_limit_max_error_stack_length() -> integer sql immutable
    96484cb4f59b646b481942deef7c61a0
_limit_max_int() -> integer sql immutable
    1fa29772268134a3b57d224bc88aa2ed
_limit_max_job_results_bytes() -> integer sql immutable
    a86f2c0d83464f124d771ddc396ce9c2
_limit_max_json_bytes() -> integer sql immutable
    ab626e2b83dbf9640693283d69a66ef8
_limit_max_json_depth() -> integer sql immutable
    8d854d4a82e2843eb9944940623f546c
_limit_max_key_length() -> integer sql immutable
    ba230037e4b047b9b087f498e7334219
_limit_max_lease_ms() -> integer sql immutable
    f41c2606a696cd75999dc869e6749bf3
_limit_max_maintenance_batch() -> integer sql immutable
    19d323ab53a977ad9601a7dd08bf5f67
_limit_max_name_length() -> integer sql immutable
    65afccb79450cdb79acbae08b713a5b8
_limit_max_priority() -> integer sql immutable
    834e295f86412047240efc08729e1242
_limit_max_prune_batch() -> integer sql immutable
    d90c17d7519a4b96b91cc7ecd8ea3782
_limit_max_queue_length() -> integer sql immutable
    8d854d4a82e2843eb9944940623f546c
_limit_max_retry_batch() -> integer sql immutable
    19d323ab53a977ad9601a7dd08bf5f67
_limit_max_retry_later_ms() -> integer sql immutable
    706d0a7b163603a2e29d01a68d69f1f2
_limit_max_steps() -> integer sql immutable
    56d9d61214140f04ff7254854ca6a7eb
_limit_max_trace_state_length() -> integer sql immutable
    8c0819bfe7ce88ee0f83ff5794c0ac68
_limit_max_worker_heartbeat_ms() -> integer sql immutable
    c7792f55d58236d896f2bee2af3202e2
_limit_max_worker_id_length() -> integer sql immutable
    65afccb79450cdb79acbae08b713a5b8
_limit_max_worker_names() -> integer sql immutable
    19d323ab53a977ad9601a7dd08bf5f67
_limit_max_worker_queues() -> integer sql immutable
    56d9d61214140f04ff7254854ca6a7eb
_limit_min_date() -> timestamp with time zone sql immutable
    26d50260f816b05872aca4830e717bf8
_limit_min_lease_ms() -> integer sql immutable
    8d854d4a82e2843eb9944940623f546c
_limit_min_priority() -> integer sql immutable
    a0035399d7ccddbdc099f131c99bfe7c
_limit_min_worker_heartbeat_ms() -> integer sql immutable
    8d854d4a82e2843eb9944940623f546c
_limits_lock_key() -> bigint sql immutable
    1248aa809def530544ef02feb2def199
_lock_held(p_job_ids bigint[], p_tokens uuid[]) -> SETOF bigint plpgsql volatile
    dba3ecf75247653b169ba60dc884b2e4
_name_set(p_names text[]) -> jsonb sql immutable
    8b8df79dd6ad60c45396ba552899f831
_next_token(p_token uuid) -> uuid sql immutable
    13fdceecc8463bb260a83d521ccc4f55
_notify_cancel(p_job_id bigint) -> void sql volatile
    ab44721e592dd1b95d57da7e29f72bdb
_notify_done(p_done text[]) -> void plpgsql volatile
    3c19efaf5dd7116867f3966312a9d819
_notify_limited(p_job_ids bigint[]) -> void plpgsql volatile
    dfcca63384456d072a685d78b0a74171
_notify_queue(p_queue text) -> void sql volatile
    c9bbbfaac313ec4946a2f88cd16833fb
_notify_ready(p_queue text) -> void sql volatile
    07c3c51ae0c88b69281acb47013c0e66
_queue_free_at(p_limit <schema>.queue_limits, p_now timestamp with time zone) -> timestamp with time zone sql stable set search_path=pg_catalog, stepping, pg_temp
    896bde6a6c11de77f537712082df9a0d
_queue_key_room(p_limit <schema>.queue_limits, p_key text) -> integer plpgsql volatile
    a589af595b18580f2f499762fbf79e72
_queue_room(p_limit <schema>.queue_limits, p_now timestamp with time zone, p_exclude bigint) -> integer plpgsql volatile
    141239536f3abedf685303bb98a4771f
_queue_started(p_limit <schema>.queue_limits, p_job_ids bigint[], p_now timestamp with time zone) -> void plpgsql volatile
    b9a5647d4ee4138485c5fb517411c92e
_queue_take_one(p_queue text, p_job_id bigint, p_now timestamp with time zone) -> boolean plpgsql volatile
    8281030f8243bdb1718598288e166926
_raise_duplicate(p_key text) -> bigint plpgsql volatile set search_path=pg_catalog, stepping, pg_temp
    ea9abeed61a48bf0c9f54dcb0b004cb5
_report_number(p_report jsonb, p_key text, p_min bigint, p_max bigint) -> bigint sql immutable
    3c49c3c86ef88ca8631862b8d856b0d0
_schedule_changed(p_name text, p_found boolean) -> boolean plpgsql volatile
    3327660949419dac8b219ff23105e06e
_schedule_key(p_name text, p_due timestamp with time zone) -> text sql immutable
    a53e03b7a5efe4f674b1985abf328ec4
_schedule_notify(p_name text) -> void sql volatile
    1f5d5ebd178cbb399b1c789f10d2354c
_schema_name() -> text sql immutable
    2fc5178d8896aa53304d37a8d7b3a0c3
_step_ran(p_job <schema>.jobs, p_claims integer) -> boolean sql stable
    bf9f29774babb58ba498d0346c43cbbc
_trace_parent_ok(p_value text) -> boolean sql immutable
    0355443aebf479f1618b0bed5358fb32
_unit_failed(p_job <schema>.jobs, p_report jsonb, p_now timestamp with time zone) -> <schema>.jobs plpgsql volatile
    e7a71178b7bc631bc171e43a59015ab0
_unit_of(p_job <schema>.jobs) -> SETOF <schema>.unit sql stable
    692503b5ae3c30075d8d076b949ec39d
_unit_succeeded(p_job <schema>.jobs, p_result jsonb, p_comp jsonb, p_now timestamp with time zone, p_worker text, p_names text[], p_queues text[], p_lease interval) -> <schema>.jobs plpgsql volatile
    ebcf6144e220b4f5d9a53c3cb80b9461
_watch_wake(p_mark boolean) -> void plpgsql volatile
    38924472cb573864a10a91dd71dc4d5c
_worker_live(p_heartbeat_at timestamp with time zone, p_period_ms integer, p_now timestamp with time zone) -> boolean sql immutable
    790a19df56e8a374c501acefb9ef58fb
backoff_delay(p_attempt integer, p_base_ms integer, p_max_ms integer) -> interval sql volatile
    b798106a348015cc542a5a1b1d4a74b1
engine_now() -> timestamp with time zone plpgsql volatile set search_path=pg_catalog, stepping, pg_temp
    f3587682cef3bf381fdb58b4fb309ac2
engine_now_stable() -> timestamp with time zone sql stable set search_path=pg_catalog, stepping, pg_temp
    afc60e7546f6a99587ca49267b187abb
job_cancel(p_job_id bigint, p_compensate boolean) -> text plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    4d97b078ad89354f2a280dab31b0f11d
job_enqueue(p_steps jsonb, p_queue text, p_priority integer, p_run_at timestamp with time zone, p_key text, p_on_duplicate text, p_deadline timestamp with time zone, p_trace_parent text, p_trace_state text, p_rate_key text) -> bigint sql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    19790afdeadf2796a5992ced36ac21ad
job_enqueue_batch(p_jobs jsonb) -> TABLE(ord integer, job_id bigint, created boolean, duplicate_refused boolean) plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    e55ded997999e64e646ac771d815a1e3
job_prune(p_older_than interval, p_statuses text[], p_limit integer) -> integer plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    831d2bd9a0d4a58cbb04bec9d6d018d0
job_retry(p_job_id bigint, p_deadline timestamp with time zone) -> bigint plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    d436526ef7e99cac39acfe219efef2bf
job_retry_many(p_queue text, p_step_name text, p_limit integer, p_after_id bigint) -> TABLE(retried integer, last_id bigint) plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    afe018a6518b3aba4ced6cfff5017bc6
lease_extend(p_job_ids bigint[], p_tokens uuid[], p_lease_ms integer) -> TABLE(job_id bigint, cancel_requested boolean) sql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    4588ec14d18a231cce66f36a237a97e2
lease_release(p_job_ids bigint[], p_tokens uuid[]) -> TABLE(job_id bigint) plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    f42b5d007519e7cabab263aa3fe5668b
maintenance_run(p_retention interval, p_prune boolean, p_batch integer) -> TABLE(leader boolean, expired integer, pruned integer, workers_removed integer) plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    cf6637d7e92d08109cb3bf016db0c23a
next_due_in_ms(p_names text[], p_queues text[]) -> double precision plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp set enable_bitmapscan=off set enable_seqscan=off set jit=off set plan_cache_mode=force_generic_plan
    75c523295566cd3f2d689941b21e973f
queue_limit_clear(p_queue text) -> boolean plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    466cb1cfca0b66c33c7c9d2f2084f5e2
queue_limit_set(p_queue text, p_max_running integer, p_rate_count integer, p_rate_period_ms integer, p_rate_per_key boolean) -> void plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    92d70b4b67d0cebaaa0ffd043f87ba02
queue_metrics() -> TABLE(queue text, runnable bigint, scheduled bigint, running bigint, oldest_runnable_age_ms double precision) sql volatile security definer set search_path=pg_catalog, stepping, pg_temp set enable_seqscan=off set jit=off
    020ccd81f90eae5f8118a8a03fc522e7
schedule_due(p_limit integer, p_after_at timestamp with time zone, p_after_name text) -> TABLE(name text, cron text, tz text, next_run_at timestamp with time zone, backfill integer, now timestamp with time zone) sql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    ec5389f011d19263430d6ba107cd2f34
schedule_fire(p_name text, p_from timestamp with time zone, p_runs timestamp with time zone[], p_next timestamp with time zone) -> integer plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp set lock_timeout=250ms
    9ae3e3ea9a229648fc5a7d269812af72
schedule_next_due_in_ms(p_skip text[]) -> double precision sql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    33db622222534f4a63569de63b28c2e3
schedule_pause(p_name text, p_paused boolean, p_next_run_at timestamp with time zone) -> boolean plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    e0165cae26b8b03277c0d9f6cbb4ef3c
schedule_remove(p_name text) -> boolean plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    56d7ded5003b441c6cd698ea42cc771c
schedule_upsert(p_name text, p_cron text, p_tz text, p_job jsonb, p_next_run_at timestamp with time zone, p_backfill integer, p_paused boolean) -> boolean plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    a5100d40516abf4846121e01009a08f6
step_claim(p_worker text, p_names text[], p_queues text[], p_limit integer, p_lease_ms integer) -> SETOF <schema>.unit plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp set enable_bitmapscan=off set enable_seqscan=off set jit=off set plan_cache_mode=force_generic_plan
    bac46552f8f3e6864f0144c2a023df8d
step_complete(p_job_ids bigint[], p_tokens uuid[], p_results jsonb[], p_compensations jsonb[], p_worker text, p_names text[], p_queues text[], p_lease_ms integer) -> TABLE(job_id bigint, accepted boolean, job_status text, next <schema>.unit) plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp set plan_cache_mode=force_generic_plan set enable_seqscan=off set enable_hashjoin=off set enable_mergejoin=off set jit=off
    a345f17397ccd493404f00ea49482907
step_fail(p_job_ids bigint[], p_tokens uuid[], p_reports jsonb[]) -> TABLE(job_id bigint, accepted boolean, job_status text, outcome text, next_run_at timestamp with time zone) plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp set plan_cache_mode=force_generic_plan set enable_seqscan=off set enable_hashjoin=off set enable_mergejoin=off set jit=off
    7de4fe8eebc49d83cc7725d0bc756d24
worker_deregister(p_id text) -> boolean sql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    0493b5350d2254fa3e0047a7818f57ae
worker_heartbeat(p_id text) -> boolean sql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    cfe51b39dd0e9c3cb61eb2ecd2b24b81
worker_register(p_id text, p_host text, p_pid integer, p_queues text[], p_names text[], p_concurrency integer, p_heartbeat_ms integer) -> void plpgsql volatile security definer set search_path=pg_catalog, stepping, pg_temp
    26fb270f2a4d0b14b41a615223f2bde2

-- views
job_overview (job_id bigint, queue text, priority integer, key text, status text, phase text, step_count integer, current_step integer, current_step_name text, current_attempt integer, run_at timestamp with time zone, lease_expires_at timestamp with time zone, lease_expired boolean, locked_by text, cancel_requested boolean, failed_step integer, last_error text, last_error_detail jsonb, deadline timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, finished_at timestamp with time zone, output jsonb, rate_key text)
live_workers (worker_id text, host text, pid integer, queues text[], step_names text[], concurrency integer, started_at timestamp with time zone, heartbeat_at timestamp with time zone, heartbeat_age interval, heartbeat_period_ms integer)
queue_limits_overview (queue text, max_running integer, running integer, rate_count integer, rate_period_ms integer, window_starts integer, ready integer, at_limit boolean, updated_at timestamp with time zone, rate_per_key boolean, keys_at_limit integer)
queue_stats (queue text, status text, jobs bigint, runnable bigint, scheduled bigint, oldest_runnable_age interval)
schedule_overview (name text, cron text, tz text, queue text, step_names text[], backfill integer, paused boolean, next_run_at timestamp with time zone, last_run_at timestamp with time zone, last_job_id bigint, last_job_status text, job jsonb, created_at timestamp with time zone, updated_at timestamp with time zone)
step_overview (job_id bigint, step_index integer, name text, status text, attempts integer, max_attempts integer, last_error text, last_error_detail jsonb, finished_at timestamp with time zone, compensate_name text, compensation_status text, compensation_attempts integer, compensation_last_error text, compensation_finished_at timestamp with time zone, result jsonb)
unrunnable_steps (step_name text, queue text, jobs bigint, oldest_age interval)
worker_overview (worker_id text, host text, pid integer, queues text[], step_names text[], concurrency integer, started_at timestamp with time zone, heartbeat_at timestamp with time zone, alive boolean, running integer, heartbeat_period_ms integer)

-- grants
function <schema>.engine_now() EXECUTE to <schema>_operator
function <schema>.engine_now() EXECUTE to <schema>_producer
function <schema>.engine_now() EXECUTE to <schema>_worker
function <schema>.engine_now_stable() EXECUTE to <schema>_operator
function <schema>.engine_now_stable() EXECUTE to <schema>_producer
function <schema>.job_cancel(bigint,boolean) EXECUTE to <schema>_operator
function <schema>.job_enqueue(jsonb,text,integer,timestamp with time zone,text,text,timestamp with time zone,text,text,text) EXECUTE to <schema>_producer
function <schema>.job_enqueue_batch(jsonb) EXECUTE to <schema>_producer
function <schema>.job_prune(interval,text[],integer) EXECUTE to <schema>_operator
function <schema>.job_retry(bigint,timestamp with time zone) EXECUTE to <schema>_operator
function <schema>.job_retry_many(text,text,integer,bigint) EXECUTE to <schema>_operator
function <schema>.lease_extend(bigint[],uuid[],integer) EXECUTE to <schema>_worker
function <schema>.lease_release(bigint[],uuid[]) EXECUTE to <schema>_worker
function <schema>.maintenance_run(interval,boolean,integer) EXECUTE to <schema>_operator
function <schema>.maintenance_run(interval,boolean,integer) EXECUTE to <schema>_worker
function <schema>.next_due_in_ms(text[],text[]) EXECUTE to <schema>_worker
function <schema>.queue_limit_clear(text) EXECUTE to <schema>_operator
function <schema>.queue_limit_set(text,integer,integer,integer,boolean) EXECUTE to <schema>_operator
function <schema>.queue_metrics() EXECUTE to <schema>_operator
function <schema>.queue_metrics() EXECUTE to <schema>_worker
function <schema>.schedule_due(integer,timestamp with time zone,text) EXECUTE to <schema>_worker
function <schema>.schedule_fire(text,timestamp with time zone,timestamp with time zone[],timestamp with time zone) EXECUTE to <schema>_worker
function <schema>.schedule_next_due_in_ms(text[]) EXECUTE to <schema>_worker
function <schema>.schedule_pause(text,boolean,timestamp with time zone) EXECUTE to <schema>_operator
function <schema>.schedule_remove(text) EXECUTE to <schema>_operator
function <schema>.schedule_upsert(text,text,text,jsonb,timestamp with time zone,integer,boolean) EXECUTE to <schema>_operator
function <schema>.step_claim(text,text[],text[],integer,integer) EXECUTE to <schema>_worker
function <schema>.step_complete(bigint[],uuid[],jsonb[],jsonb[],text,text[],text[],integer) EXECUTE to <schema>_worker
function <schema>.step_fail(bigint[],uuid[],jsonb[]) EXECUTE to <schema>_worker
function <schema>.worker_deregister(text) EXECUTE to <schema>_worker
function <schema>.worker_heartbeat(text) EXECUTE to <schema>_worker
function <schema>.worker_register(text,text,integer,text[],text[],integer,integer) EXECUTE to <schema>_worker
relation job_overview SELECT to <schema>_operator
relation job_overview SELECT to <schema>_producer
relation live_workers SELECT to <schema>_operator
relation queue_limits_overview SELECT to <schema>_operator
relation queue_stats SELECT to <schema>_operator
relation schedule_overview SELECT to <schema>_operator
relation settings SELECT to <schema>_operator
relation settings SELECT to <schema>_producer
relation settings SELECT to <schema>_worker
relation step_overview SELECT to <schema>_operator
relation step_overview SELECT to <schema>_producer
relation unrunnable_steps SELECT to <schema>_operator
relation worker_overview SELECT to <schema>_operator
schema USAGE to <schema>_operator
schema USAGE to <schema>_producer
schema USAGE to <schema>_worker

-- comments
function <schema>._bad_input(text): Raises SQLSTATE SP001 with the message "stepping: <p_what>".
function <schema>._claim_budget(bigint[],bigint,boolean): The leading ids whose jobs' results together fit in p_budget bytes (and the first when p_first).
function <schema>._claim_lease(bigint[],text,timestamp with time zone,interval): Leases the jobs step_claim locked and returns their units in claim order; settles cancelled or overdue ones instead.
function <schema>._claim_settle(<schema>.jobs,timestamp with time zone): Settles a claimed job that was cancelled or passed its deadline; 'id:status' when it is now final.
function <schema>._compensation_next(<schema>.jobs,timestamp with time zone,text,text[],text[],interval): Starts the next compensation in reverse step order, or ends the job (cancelled/compensated).
function <schema>._compensation_of(jsonb): Validates a reported compensation {name, args} (SP001 when bad); NULL when none.
function <schema>._default_backoff_base_ms(): BACKOFF_BASE_MS of src/defaults.ts (generated by migrate).
function <schema>._default_backoff_max_ms(): BACKOFF_MAX_MS of src/defaults.ts (generated by migrate).
function <schema>._default_lease_ms(): LEASE_MS of src/defaults.ts (generated by migrate).
function <schema>._default_maintenance_batch(): MAINTENANCE_BATCH of src/defaults.ts (generated by migrate).
function <schema>._default_maintenance_interval_ms(): MAINTENANCE_INTERVAL_MS of src/defaults.ts (generated by migrate).
function <schema>._default_prune_age_ms(): PRUNE_AGE_MS of src/defaults.ts (generated by migrate).
function <schema>._default_prune_limit(): PRUNE_LIMIT of src/defaults.ts (generated by migrate).
function <schema>._default_queue(): QUEUE of src/defaults.ts (generated by migrate).
function <schema>._default_retention_ms(): RETENTION_MS of src/defaults.ts (generated by migrate).
function <schema>._default_worker_heartbeat_ms(): WORKER_HEARTBEAT_MS of src/defaults.ts (generated by migrate).
function <schema>._done_token(uuid): Token a job keeps after a success under p_token was applied without a continuation.
function <schema>._end_needs_worker(<schema>.jobs,integer): Whether a unit past its deadline is left to a worker of its step (it ran; its compensation is unknown here).
function <schema>._enqueue_int(integer,integer,text,jsonb): A step's optional whole-number field from JSON (1 to MAX_INT), NULL when absent; SP001 otherwise.
function <schema>._enqueue_json(integer,integer,text,jsonb): Args of enqueue input when within the size and depth limits, or SP001.
function <schema>._enqueue_reject(integer,integer,text,anyelement): Raises SP001 for enqueue input naming the job, the step and the rule broken (used in CASE branches by job_enqueue_batch).
function <schema>._enqueue_steps(integer,jsonb): The steps of one enqueued job as checked rows (SP001 on bad input); inlined by job_enqueue_batch.
function <schema>._enqueue_time(integer,text,jsonb,text,jsonb,timestamp with time zone,timestamp with time zone): A job's time from enqueue input: a timestamp or milliseconds from now, not both; a default when absent; SP001 otherwise.
function <schema>._enqueue_timestamptz(integer,text,jsonb): A run_at/deadline of enqueue input as a timestamptz within the limits, or SP001.
function <schema>._error_record(jsonb): Bounded error record: message, name, stack (truncated), attempt, at.
function <schema>._forward_fail(<schema>.jobs,jsonb,boolean,integer,timestamp with time zone): Fails the forward path at the current step and starts compensating (or ends the job failed).
function <schema>._forward_stop(<schema>.jobs,integer,boolean,boolean,text,timestamp with time zone,text,text[],text[],interval): Ends a job's forward path: compensations in reverse order when there are any, else the final status.
function <schema>._is_final(text): True for final job statuses: succeeded, failed, compensated, cancelled.
function <schema>._job_enqueue_batch(jsonb,integer): The body of job_enqueue_batch; p_depth counts retries of a key freed meanwhile.
function <schema>._job_finish(bigint[],text,timestamp with time zone,boolean,uuid[]): Puts jobs in a final status (set-based); steps that never ran become cancelled or skipped; with tokens, only held last steps.
function <schema>._job_finish_one(<schema>.jobs,text,timestamp with time zone): Puts one job in a final status; returns its row.
function <schema>._job_lock(bigint): The job row locked FOR UPDATE; SP003 when there is no such job.
function <schema>._job_next_unit(<schema>.jobs,integer,text,text,timestamp with time zone,text,text[],text[],interval): Moves a job to its next unit: leased to the reporting worker when it can run it, else pending and announced.
function <schema>._json_fits(jsonb): True when the value prints within MAX_JSON_BYTES (cheap for small values).
function <schema>._lease(integer): Lease interval for p_lease_ms (default when NULL), clamped to [MIN_LEASE_MS, MAX_LEASE_MS].
function <schema>._limit_max_call_json_bytes(): MAX_CALL_JSON_BYTES of src/limits.ts (generated by migrate).
function <schema>._limit_max_claim_batch(): MAX_CLAIM_BATCH of src/limits.ts (generated by migrate).
function <schema>._limit_max_claim_results_bytes(): MAX_CLAIM_RESULTS_BYTES of src/limits.ts (generated by migrate).
function <schema>._limit_max_date(): MAX_DATE of src/limits.ts (generated by migrate).
function <schema>._limit_max_delay_ms(): MAX_DELAY_MS of src/limits.ts (generated by migrate).
function <schema>._limit_max_error_message_length(): MAX_ERROR_MESSAGE_LENGTH of src/limits.ts (generated by migrate).
function <schema>._limit_max_error_name_length(): MAX_ERROR_NAME_LENGTH of src/limits.ts (generated by migrate).
function <schema>._limit_max_error_stack_length(): MAX_ERROR_STACK_LENGTH of src/limits.ts (generated by migrate).
function <schema>._limit_max_int(): MAX_INT of src/limits.ts (generated by migrate).
function <schema>._limit_max_job_results_bytes(): MAX_JOB_RESULTS_BYTES of src/limits.ts (generated by migrate).
function <schema>._limit_max_json_bytes(): MAX_JSON_BYTES of src/limits.ts (generated by migrate).
function <schema>._limit_max_json_depth(): MAX_JSON_DEPTH of src/limits.ts (generated by migrate).
function <schema>._limit_max_key_length(): MAX_KEY_LENGTH of src/limits.ts (generated by migrate).
function <schema>._limit_max_lease_ms(): MAX_LEASE_MS of src/limits.ts (generated by migrate).
function <schema>._limit_max_maintenance_batch(): MAX_MAINTENANCE_BATCH of src/limits.ts (generated by migrate).
function <schema>._limit_max_name_length(): MAX_NAME_LENGTH of src/limits.ts (generated by migrate).
function <schema>._limit_max_priority(): MAX_PRIORITY of src/limits.ts (generated by migrate).
function <schema>._limit_max_prune_batch(): MAX_PRUNE_BATCH of src/limits.ts (generated by migrate).
function <schema>._limit_max_queue_length(): MAX_QUEUE_LENGTH of src/limits.ts (generated by migrate).
function <schema>._limit_max_retry_batch(): MAX_RETRY_BATCH of src/limits.ts (generated by migrate).
function <schema>._limit_max_retry_later_ms(): MAX_RETRY_LATER_MS of src/limits.ts (generated by migrate).
function <schema>._limit_max_steps(): MAX_STEPS of src/limits.ts (generated by migrate).
function <schema>._limit_max_trace_state_length(): MAX_TRACE_STATE_LENGTH of src/limits.ts (generated by migrate).
function <schema>._limit_max_worker_heartbeat_ms(): MAX_WORKER_HEARTBEAT_MS of src/limits.ts (generated by migrate).
function <schema>._limit_max_worker_id_length(): MAX_WORKER_ID_LENGTH of src/limits.ts (generated by migrate).
function <schema>._limit_max_worker_names(): MAX_WORKER_NAMES of src/limits.ts (generated by migrate).
function <schema>._limit_max_worker_queues(): MAX_WORKER_QUEUES of src/limits.ts (generated by migrate).
function <schema>._limit_min_date(): MIN_DATE of src/limits.ts (generated by migrate).
function <schema>._limit_min_lease_ms(): MIN_LEASE_MS of src/limits.ts (generated by migrate).
function <schema>._limit_min_priority(): MIN_PRIORITY of src/limits.ts (generated by migrate).
function <schema>._limit_min_worker_heartbeat_ms(): MIN_WORKER_HEARTBEAT_MS of src/limits.ts (generated by migrate).
function <schema>._limits_lock_key(): Advisory lock key that orders queue_limit_set against claims and continuations.
function <schema>._lock_held(bigint[],uuid[]): Locks, in id order, the running jobs held under the given tokens; returns their ids.
function <schema>._name_set(text[]): A long list of step names as a jsonb set (keys), for O(log n) membership tests; NULL for a short list.
function <schema>._next_token(uuid): Token of the continuation leased by a completion under p_token (deterministic).
function <schema>._notify_cancel(bigint): Hints (channel <schema>_cancel) that a running job was cancelled; workers confirm in the database.
function <schema>._notify_done(text[]): Announces finished jobs on <schema>_done, one notification per 7000 bytes of "id:status" items.
function <schema>._notify_limited(bigint[]): Wakes workers of the limited queues among the given jobs (room may have been freed).
function <schema>._notify_queue(text): Wakes workers listening for work on p_queue (channel <schema>_ready).
function <schema>._notify_ready(text): Wakes the workers of p_queue for work made ready by an update: NOTIFY, and a mark for the activity watch.
function <schema>._queue_free_at(<schema>.queue_limits,timestamp with time zone): When a limited queue may have room again (NULL: room now); read without locks, for idle sleeps.
function <schema>._queue_key_room(<schema>.queue_limits,text): Units of one rate key that may start now in a per-key rate-limited queue (caller holds the limit row).
function <schema>._queue_room(<schema>.queue_limits,timestamp with time zone,bigint): Units of a limited queue that may start now (caller holds the limit row): running and rate room.
function <schema>._queue_started(<schema>.queue_limits,bigint[],timestamp with time zone): Records leased units of a limited queue as running and as starts (caller holds the limit row).
function <schema>._queue_take_one(text,bigint,timestamp with time zone): May a continuation of a job lease its next unit in p_queue now (limits allow, recorded)?
function <schema>._raise_duplicate(text): Raises SP002 for a refused duplicate key (used by job_enqueue).
function <schema>._report_number(jsonb,text,bigint,bigint): A clamped number field of a report, NULL when absent or not a number.
function <schema>._schedule_changed(text,boolean): Returns p_found; wakes schedulers first when it is true (a schedule changed).
function <schema>._schedule_key(text,timestamp with time zone): Key of a scheduled run: schedule:<name>:<due time, ISO 8601 UTC>.
function <schema>._schedule_notify(text): Wakes schedulers after a schedule changed (channel <schema>_schedule).
function <schema>._schema_name(): The schema of this installation (generated by migrate).
function <schema>._step_ran(<schema>.jobs,integer): Whether a job's current forward step ran (an attempt beyond the caller's own claims, or a "not yet").
function <schema>._trace_parent_ok(text): True when the text is a valid W3C traceparent (lowercase hex).
function <schema>._unit_failed(<schema>.jobs,jsonb,timestamp with time zone): Records a failed attempt: retry with backoff, "not yet" without counting, or end the forward path.
function <schema>._unit_of(<schema>.jobs): The unit (step or compensation) a job row points at, as workers receive it, with earlier results.
function <schema>._unit_succeeded(<schema>.jobs,jsonb,jsonb,timestamp with time zone,text,text[],text[],interval): Records a succeeded step (result, compensation) or compensation and advances the job.
function <schema>._watch_wake(boolean): Shows the activity watch (pg_stat_database.tup_inserted) new ready work at commit: a wake_marks row when p_mark, statistics flushed.
function <schema>._worker_live(timestamp with time zone,integer,timestamp with time zone): A worker is live while its last heartbeat is less than three heartbeat periods old.
function <schema>.backoff_delay(integer,integer,integer): Retry delay after p_attempt failures: min(max, base*2^(attempt-1)) times a jitter factor in [0.5, 1).
function <schema>.engine_now(): The engine's clock: clock_timestamp() plus settings.clock_offset (owner-only; tests shift it).
function <schema>.engine_now_stable(): engine_now() declared STABLE, read once per query by the views (index walks stay possible).
function <schema>.job_cancel(bigint,boolean): Cancels an unfinished job: pending at once, running after its current step; optionally compensating.
function <schema>.job_enqueue(jsonb,text,integer,timestamp with time zone,text,text,timestamp with time zone,text,text,text): Enqueues one job (steps as a JSON array of {name, args}) in the caller's transaction; returns its id.
function <schema>.job_enqueue_batch(jsonb): Atomically inserts jobs with their steps in the caller's transaction; checks every limit (SP001); dedupes on key race-free; a refused duplicate undoes the batch; one NOTIFY per queue.
function <schema>.job_prune(interval,text[],integer): Deletes up to p_limit jobs finished before engine_now()-p_older_than in the given final statuses; returns how many.
function <schema>.job_retry(bigint,timestamp with time zone): Resumes a failed job from its failed step (attempts reset, a passed deadline removed); other statuses are an error.
function <schema>.job_retry_many(text,text,integer,bigint): Retries up to p_limit failed jobs (by queue / failed step name) after p_after_id; returns the count and the cursor.
function <schema>.lease_extend(bigint[],uuid[],integer): Heartbeat: extends leases still held under the given tokens; returns the ones kept, with cancel_requested.
function <schema>.lease_release(bigint[],uuid[]): Returns held units to the queue, runnable now, without counting the attempt.
function <schema>.maintenance_run(interval,boolean,integer): One bounded round of leader-only maintenance: expire unclaimed jobs past their deadline, prune finished jobs, drop dead workers.
function <schema>.next_due_in_ms(text[],text[]): Milliseconds until a unit the worker can run becomes claimable (NULL when none), for precise idle sleeps; a few index probes without limits in scope.
function <schema>.queue_limit_clear(text): Removes the fleet-wide limits of a queue; true when it had some.
function <schema>.queue_limit_set(text,integer,integer,integer,boolean): Sets the fleet-wide limits of a queue: max_running at once, and/or rate_count starts per rate_period_ms (for the queue, or per rate key).
function <schema>.queue_metrics(): Per queue with unfinished jobs: runnable now, scheduled later, running, and the oldest runnable job's wait (ms).
function <schema>.schedule_due(integer,timestamp with time zone,text): Active schedules whose next run is due (engine clock), with the clock's reading; pages on after (p_after_at, p_after_name).
function <schema>.schedule_fire(text,timestamp with time zone,timestamp with time zone[],timestamp with time zone): Enqueues a schedule's due runs and advances next_run_at (to after now) in one transaction, once per due time (SKIP LOCKED).
function <schema>.schedule_next_due_in_ms(text[]): Milliseconds until the next active schedule not in p_skip is due (NULL: none), engine clock.
function <schema>.schedule_pause(text,boolean,timestamp with time zone): Pauses or resumes a schedule (resume: next_run_at from the given time, required; runs due while paused are skipped).
function <schema>.schedule_remove(text): Deletes a recurring schedule; true when it existed.
function <schema>.schedule_upsert(text,text,text,jsonb,timestamp with time zone,integer,boolean): Creates or replaces a recurring schedule (job template tried first); keeps next_run_at when cron and tz are unchanged.
function <schema>.step_claim(text,text[],text[],integer,integer): Leases up to p_limit runnable units the worker has handlers for (SKIP LOCKED, priority then due time), fresh token each.
function <schema>.step_complete(bigint[],uuid[],jsonb[],jsonb[],text,text[],text[],integer): Applies succeeded results whose lease token is current (idempotent; stale ones: accepted=false); may lease the next unit to the same worker.
function <schema>.step_fail(bigint[],uuid[],jsonb[]): Applies failed attempts whose lease token is current (idempotent): backoff retry, not-yet, or end of the forward path.
function <schema>.worker_deregister(text): Removes a worker's registration (clean stop); true when it had one.
function <schema>.worker_heartbeat(text): Marks a registered worker alive now; false when it is not registered.
function <schema>.worker_register(text,text,integer,text[],text[],integer,integer): Registers (or refreshes) a worker: host, pid, queues, step names, concurrency, heartbeat period.
relation <schema>.job_overview: One row per job: status (with compensating), current step, attempts, last error, lease, timestamps, output.
relation <schema>.live_workers: Workers alive now (heartbeat within three periods): host, pid, queues, step names, concurrency, heartbeats.
relation <schema>.queue_limits_overview: Per limited queue: max_running and running now, rate_count per rate_period_ms (per key or not) and starts in the window, ready units, at_limit.
relation <schema>.queue_stats: Per queue and status: job count, runnable now, scheduled later, and the oldest runnable job's wait.
relation <schema>.schedule_overview: One row per recurring schedule: cron, time zone, queue, steps, paused, next and last run, last job and its status.
relation <schema>.step_overview: One row per step: status (running/retrying live, skipped), attempts, last error, result, and its compensation's state.
relation <schema>.unrunnable_steps: Runnable step names (per queue) that no live worker can run, with how many jobs wait and the oldest wait.
relation <schema>.worker_overview: Registered workers, live or gone: host, pid, queues, step names, concurrency, heartbeats, alive, units held.
