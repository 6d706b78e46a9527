-- Reserved: number 0005 belongs to a change made on another branch (authorization codes).
-- Migrations are numbered without gaps, so this branch, which adds 0006, holds the place.
-- At merge the other branch's 0005 replaces this file.
SELECT 1;
