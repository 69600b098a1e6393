-- The newest sequence number the change log's retention removed, so that a reader whose
-- cursor is behind it is told (state_core::Error::ChangesTrimmed) rather than handed the
-- oldest change kept as if nothing were missing. Kept by a trigger, so any deletion from the
-- log counts. For a log trimmed before this migration: everything below its oldest change
-- (or, if it is empty, every sequence number handed out) counts as removed.
CREATE TABLE changes_trimmed (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    through BIGINT NOT NULL
);

INSERT INTO changes_trimmed (id, through)
SELECT 0, COALESCE(
    (SELECT min(seq) - 1 FROM changes),
    pg_sequence_last_value(pg_get_serial_sequence('changes', 'seq')::regclass),
    0);

CREATE FUNCTION note_trimmed_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE changes_trimmed SET through = GREATEST(through, (SELECT max(seq) FROM removed))
    WHERE id = 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER changes_trimmed_through AFTER DELETE ON changes
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION note_trimmed_changes();
