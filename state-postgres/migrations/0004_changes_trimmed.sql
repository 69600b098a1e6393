-- The newest sequence number the change log's retention removed, so that a reader whose
-- cursor is behind it is told (state_core::Error::ChangesTrimmed) rather than handed the
-- oldest change kept as if nothing were missing. Kept by a trigger on every DELETE from the
-- log (not TRUNCATE).
--
-- For a log trimmed before this migration: everything below its oldest change (or, if it is
-- empty, every sequence number handed out) counts as removed. Sequence numbers lost to rolled
-- back transactions below the oldest change count too: a reader from 0 of such a log is told
-- once, needlessly. The log is locked first, so that a trim by a node still on the previous
-- schema cannot slip between that value and the trigger.
LOCK TABLE changes IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE changes_trimmed (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    through BIGINT NOT NULL
);

INSERT INTO changes_trimmed (id, through)
SELECT 0, COALESCE(
    (SELECT min(seq) - 1 FROM changes),
    (SELECT last_value FROM pg_sequences
     WHERE format('%I.%I', schemaname, sequencename) = pg_get_serial_sequence('changes', 'seq')),
    0);

-- The function's search path is the schema it was created in (the store's), whatever the
-- session's: a DELETE from this schema's log raises this schema's watermark.
CREATE FUNCTION note_trimmed_changes() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE changes_trimmed SET through = GREATEST(through, (SELECT max(seq) FROM removed))
    WHERE id = 0 AND EXISTS (SELECT 1 FROM removed);
    RETURN NULL;
END
$$;

CREATE TRIGGER changes_trimmed_through AFTER DELETE ON changes
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION note_trimmed_changes();
