-- Reserved: number 0004 belongs to a change made on another branch (PostgreSQL indexes).
-- Migrations are numbered without gaps, so this branch, which adds 0005, holds the place.
-- At merge the other branch's 0004 replaces this file.
SELECT 1;
