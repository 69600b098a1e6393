-- The newest sequence number the change log's retention removed, so that a reader whose
-- cursor is behind it is told (state_core::Error::ChangesTrimmed) rather than handed the
-- oldest change kept as if nothing were missing. The store's trim raises it in the same
-- transaction as its DELETE (not a row trigger: one UPDATE per deleted row made a trim of
-- 65 536 changes 70 % slower in a `sqlite3` model). For a log trimmed before this migration:
-- everything below its oldest change (or, if it is empty, every sequence number handed out)
-- counts as removed.
CREATE TABLE changes_trimmed (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    through INTEGER NOT NULL
);

INSERT INTO changes_trimmed (id, through)
VALUES (0, COALESCE((SELECT min(seq) - 1 FROM changes),
                    (SELECT seq FROM sqlite_sequence WHERE name = 'changes'),
                    0));
