-- A run's report lines, up to 1000 to a row. Keep in step with ../postgres/0002_run_line_chunks.sql.
-- One row per line made a first sync of 100,000 users write 100,000 rows (11 MB); a run's lines are written
-- once, whole, and read a page at a time. `lines` is a JSON array of `[user, action, reason, dn or null]`.
-- Line n of a run is line n % 1000 of chunk n / 1000, so every chunk but a run's last holds exactly 1000
-- lines (queries.rs, LINES_PER_CHUNK, reads by that rule).
CREATE TABLE sync_run_line_chunks (
    run_id BIGINT NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    chunk BIGINT NOT NULL,
    line_count BIGINT NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (run_id, chunk)
);

-- The old runs keep their lines. Renumbered from 0 in seq order, so a gap in seq can't leave a chunk short.
INSERT INTO sync_run_line_chunks (run_id, chunk, line_count, lines)
SELECT run_id, pos / 1000, COUNT(*), json_group_array(json_array(user_name, action, reason, dn) ORDER BY pos)
FROM (
    SELECT run_id, user_name, action, reason, dn,
           ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY seq) - 1 AS pos
    FROM sync_run_lines
) AS numbered
GROUP BY run_id, pos / 1000;

DROP TABLE sync_run_lines;
