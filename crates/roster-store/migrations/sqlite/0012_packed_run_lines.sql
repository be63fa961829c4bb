-- A run's report lines compressed (issue 26). Keep in step with ../postgres/0013_packed_run_lines.sql.
-- A first sync of 100,000 users wrote 9.3 MB of report lines (a sixth of everything it wrote), in every
-- run's history; LZ4 takes them to about 1 MB. A chunk written from now on has its JSON array compressed
-- in `packed` (sql/runs.rs, `encode_lines`) and `lines` empty; the chunks written before keep their JSON
-- in `lines`, and `packed` NULL. Both are read.
ALTER TABLE sync_run_line_chunks ADD COLUMN packed BLOB;
