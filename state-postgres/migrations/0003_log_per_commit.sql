-- The change log is written by the store itself from now on, one row per version a commit
-- made: several callers' batches merged into one transaction (group commit) each leave their
-- own versions, where a row trigger saw only the transaction's last one.
DROP TRIGGER slots_log ON slots;
DROP FUNCTION log_slot_change();

-- Appends versions to the log in the given order and tells listeners (`LISTEN
-- state_changes`; the payload is the schema) at commit. Called by the store at the end of
-- its write statement, after every row lock it needs: it then takes a transaction-scoped
-- advisory lock before taking sequence numbers, so writers of log rows hold it from their log
-- rows to COMMIT, one at a time, and sequence order is commit order (a reader of
-- `seq > cursor` never skips a row that commits late).
CREATE FUNCTION append_changes(
    p_kinds text[], p_ids text[], p_subs text[], p_namespaces text[], p_keys text[],
    p_versions bigint[], p_values text[], p_at bigint
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF coalesce(cardinality(p_kinds), 0) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('state-postgres:changes:' || current_schema(), 0));
    INSERT INTO changes (kind, scope_id, scope_sub, namespace, key, version, value, at)
    SELECT u.kind, u.scope_id, u.scope_sub, u.namespace, u.key, u.version, u.value, p_at
    FROM unnest(p_kinds, p_ids, p_subs, p_namespaces, p_keys, p_versions, p_values)
        WITH ORDINALITY AS u(kind, scope_id, scope_sub, namespace, key, version, value, ord)
    ORDER BY u.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pg_notify('state_changes', current_schema());
    RETURN n;
END
$$;
