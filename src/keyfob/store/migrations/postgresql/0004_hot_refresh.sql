-- Refreshes become HOT updates (heap-only tuples): docs/scaling.md, "What one refresh
-- costs PostgreSQL".
--
-- PostgreSQL can update a row in place on its page, writing no new index entries, only
-- when no column any index reads changes. A rotation changes counter, rotated_at,
-- last_used_at and idle_expires_at; 0001's purge index on
-- LEAST(idle_expires_at, absolute_expires_at) read the last of them, so no rotation was
-- ever HOT and each one added an entry to every index of the table.
--
-- The purge now finds expired sessions through expiry_day, the day (unix seconds / 86400,
-- rounded down) of a session's end: LEAST(idle_expires_at, absolute_expires_at), the
-- expression of Session.expires_at(). A rotation moves that end by the time since the
-- previous one, so it changes the day only when the end crosses midnight UTC (once a day
-- per active session at most) and the other rotations stay HOT. The purge query takes
-- whole days from the index and re-checks the exact end (statements.PURGE).
--
-- A stored generated column, so that no statement has to set it: the insert and the
-- rotation are unchanged, and a manual UPDATE cannot leave it stale. double precision
-- like the times it derives from: no cast that a far-off (or infinite) time could
-- overflow.

-- Dropped before the column is added: adding a stored generated column rewrites the
-- table and rebuilds its indexes, and this one is not worth rebuilding.
DROP INDEX sessions_by_expiry;

-- fillfactor 90: inserts leave a tenth of each page free, room for the new versions of
-- the page's rows, which HOT updates must put on the same page (the dead versions are
-- pruned when the page runs short). ALTER TABLE … SET (fillfactor) alone only affects
-- pages written from then on; the rewrite for the new column, in the same statement,
-- lays out the existing rows with it too. The rewrite holds an ACCESS EXCLUSIVE lock on
-- sessions while it runs (refreshes wait, then answer 503 after lock_timeout): 3.5-8.5 s
-- for a million sessions on the test machine of docs/scaling.md.
ALTER TABLE sessions
    SET (fillfactor = 90),
    ADD COLUMN expiry_day double precision
        GENERATED ALWAYS AS (floor(LEAST(idle_expires_at, absolute_expires_at) / 86400)) STORED;

CREATE INDEX sessions_by_expiry_day ON sessions (expiry_day);
