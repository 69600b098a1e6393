-- A slot's history is a chain through the change log instead of an index on it. The history
-- index (`changes_slot`, keyed by the slot's identity) put one entry per logged version on the
-- leaf of its slot: a group of 64 sessions' events dirtied ~260 pages, most of them that
-- index's, each a WAL frame to write and sync. Each logged version now names the one before
-- it of the same slot, and each slot row its newest: a history read walks the chain by `seq`
-- (the log's rowid), and a commit writes nothing beyond the rows it already wrote.
--
-- `prev_seq`: the previous version's `seq` (NULL: none logged); `prev_back`: how many rows
-- back it is, for a previous version written by the same statement (a commit does not know its
-- own sequence numbers, but one statement's rows get consecutive ones: SQLite has one writer).
-- A row names its previous version by one of the two.
ALTER TABLE changes ADD COLUMN prev_seq INTEGER;
ALTER TABLE changes ADD COLUMN prev_back INTEGER;

-- The `seq` of the slot's newest logged version.
ALTER TABLE slots ADD COLUMN last_seq INTEGER;

-- The newest logged version of each slot whose row a purge removed, so that its history
-- stays readable and a later write continues the chain. The change log's retention removes
-- the heads it trims past.
CREATE TABLE purged_heads (
    kind      TEXT    NOT NULL,
    scope_id  TEXT    NOT NULL,
    scope_sub TEXT    NOT NULL,
    namespace TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    last_seq  INTEGER NOT NULL,
    PRIMARY KEY (kind, scope_id, scope_sub, namespace, key)
) WITHOUT ROWID;

-- The chain of every version logged so far, by the index, before it goes.
UPDATE changes SET prev_seq = (
    SELECT max(p.seq) FROM changes p
    WHERE p.kind = changes.kind AND p.scope_id = changes.scope_id
      AND p.scope_sub = changes.scope_sub AND p.namespace = changes.namespace
      AND p.key = changes.key AND p.seq < changes.seq);

UPDATE slots SET last_seq = (
    SELECT max(c.seq) FROM changes c
    WHERE c.kind = slots.kind AND c.scope_id = slots.scope_id
      AND c.scope_sub = slots.scope_sub AND c.namespace = slots.namespace
      AND c.key = slots.key);

INSERT INTO purged_heads (kind, scope_id, scope_sub, namespace, key, last_seq)
SELECT c.kind, c.scope_id, c.scope_sub, c.namespace, c.key, max(c.seq) FROM changes c
WHERE NOT EXISTS (
    SELECT 1 FROM slots s
    WHERE s.kind = c.kind AND s.scope_id = c.scope_id AND s.scope_sub = c.scope_sub
      AND s.namespace = c.namespace AND s.key = c.key)
GROUP BY c.kind, c.scope_id, c.scope_sub, c.namespace, c.key;

DROP INDEX changes_slot;

-- The triggers of migrations 0005 and 0006, keeping the slot's newest `seq` too.
DROP TRIGGER changes_to_slots;
DROP TRIGGER changes_to_new_slots;

CREATE TRIGGER changes_to_slots AFTER INSERT ON changes WHEN NEW.superseded IS NULL
BEGIN
    INSERT INTO slots (kind, scope_id, scope_sub, namespace, key, version, value, updated_at,
                       expires_at, last_seq)
    VALUES (NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version,
            NEW.value, NEW.at, NEW.expires_at, NEW.seq)
    ON CONFLICT (kind, scope_id, scope_sub, namespace, key) DO UPDATE SET
        version = excluded.version, value = excluded.value,
        updated_at = excluded.updated_at, expires_at = excluded.expires_at,
        last_seq = excluded.last_seq;
END;

CREATE TRIGGER changes_to_new_slots AFTER INSERT ON changes WHEN NEW.superseded = 2
BEGIN
    INSERT INTO slots (kind, scope_id, scope_sub, namespace, key, version, value, updated_at,
                       expires_at, last_seq)
    VALUES (NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version,
            NEW.value, NEW.at, NEW.expires_at, NEW.seq);
END;

-- Every removal of a slot row is a purge (a delete is a tombstone): keep its chain's head.
CREATE TRIGGER slots_purged AFTER DELETE ON slots WHEN OLD.last_seq IS NOT NULL
BEGIN
    INSERT INTO purged_heads (kind, scope_id, scope_sub, namespace, key, last_seq)
    VALUES (OLD.kind, OLD.scope_id, OLD.scope_sub, OLD.namespace, OLD.key, OLD.last_seq)
    ON CONFLICT (kind, scope_id, scope_sub, namespace, key) DO UPDATE SET
        last_seq = excluded.last_seq;
END;
