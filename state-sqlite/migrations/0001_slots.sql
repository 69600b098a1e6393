-- One row per slot. Every part of the slot's identity has its own column, so no two slots can
-- share a row: `scope_sub` is the second id part of `object` and `user` scopes, '' for the
-- one-part kinds (id parts are validated non-empty, so '' is never a real part).
CREATE TABLE slots (
    kind       TEXT    NOT NULL,
    scope_id   TEXT    NOT NULL,
    scope_sub  TEXT    NOT NULL,
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    -- Raised by exactly 1 per committed write; rows exist only once written.
    version    INTEGER NOT NULL CHECK (version > 0),
    -- The JSON value; NULL is a tombstone.
    value      TEXT,
    -- Milliseconds since the Unix epoch.
    updated_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (kind, scope_id, scope_sub, namespace, key)
) WITHOUT ROWID;

-- purge_expired finds expired rows without a scan.
CREATE INDEX slots_expiry ON slots (expires_at) WHERE expires_at IS NOT NULL;

-- The highest version ever physically removed from a scope: a slot without a row reads at
-- its scope's floor, and its next write continues above it.
CREATE TABLE scope_floors (
    kind      TEXT    NOT NULL,
    scope_id  TEXT    NOT NULL,
    scope_sub TEXT    NOT NULL,
    floor     INTEGER NOT NULL,
    PRIMARY KEY (kind, scope_id, scope_sub)
) WITHOUT ROWID;
