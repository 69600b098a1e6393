-- A commit that assumed a slot had no row stores the slot's version as a NEW row: a row there
-- (another connection wrote the slot since, or the committer no longer remembered it) fails
-- the primary key, which aborts the whole statement, so that assumption needs no lookup of
-- its own before the write (the one-call commit's guard looked up every slot it assumed
-- absent: ~10-16 % of a 64-writer group of fresh slots). The commit flags such a version
-- `superseded = 2`; the upsert trigger of migration 0005 keeps serving NULL, what every
-- other writer means (clears, restores, the read path, older rows), and 1 still means "a
-- later version follows: not stored".
CREATE TRIGGER changes_to_new_slots AFTER INSERT ON changes WHEN NEW.superseded = 2
BEGIN
    INSERT INTO slots (kind, scope_id, scope_sub, namespace, key, version, value, updated_at,
                       expires_at)
    VALUES (NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version,
            NEW.value, NEW.at, NEW.expires_at);
END;
