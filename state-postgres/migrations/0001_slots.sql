-- One row per slot. Every part of the slot's identity has its own column, so no two slots can
-- share a row: `scope_sub` is the second id part of `object` and `user` scopes, '' for the
-- one-part kinds (id parts are validated non-empty, so '' is never a real part).
-- COLLATE "C": listings are ordered bytewise, as Rust orders strings, whatever the database's
-- default collation.
CREATE TABLE slots (
    kind       TEXT COLLATE "C" NOT NULL,
    scope_id   TEXT COLLATE "C" NOT NULL,
    scope_sub  TEXT COLLATE "C" NOT NULL,
    namespace  TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    -- Raised by exactly 1 per committed write; rows exist only once written.
    version    BIGINT NOT NULL CHECK (version > 0),
    -- The JSON text as serde_json wrote it (not JSONB: JSONB rewrites numbers and rejects
    -- \u0000); NULL is a tombstone.
    value      TEXT,
    -- Milliseconds since the Unix epoch.
    updated_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (kind, scope_id, scope_sub, namespace, key)
);

-- purge_expired finds expired rows without a scan.
CREATE INDEX slots_expiry ON slots (expires_at) WHERE expires_at IS NOT NULL;

-- The highest version ever physically removed from a scope: a slot without a row reads at
-- its scope's floor, and its next write continues above it.
CREATE TABLE scope_floors (
    kind      TEXT COLLATE "C" NOT NULL,
    scope_id  TEXT COLLATE "C" NOT NULL,
    scope_sub TEXT COLLATE "C" NOT NULL,
    floor     BIGINT NOT NULL,
    PRIMARY KEY (kind, scope_id, scope_sub)
);
