-- Up Migration
-- Room on each page for the updates a row goes through (claim, report): an update that
-- stays on its page writes less WAL (no lock record for the old page, fewer full-page
-- images), and steps' updates (no indexed column changes) become HOT. Applies to pages
-- written from now on.
ALTER TABLE jobs SET (fillfactor = 85);
ALTER TABLE steps SET (fillfactor = 85);

-- Down Migration
ALTER TABLE jobs RESET (fillfactor);
ALTER TABLE steps RESET (fillfactor);
