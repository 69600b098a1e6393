//! The store's statements. Slot identities travel as parallel arrays (`unnest`), so every
//! statement has one fixed shape whatever the number of slots: the server prepares it once
//! per connection.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgConnection, Row};
use state_core::backend::rows::{self, RowError, scope_columns};
use state_core::{Record, Scope, Slot, Timestamp};
use state_sql::{Known, columns};

use crate::error::PgError;

/// Slot identities as parallel columns.
#[derive(Default)]
struct Ids {
    kind: Vec<&'static str>,
    id: Vec<String>,
    sub: Vec<String>,
    ns: Vec<String>,
    key: Vec<String>,
}

impl Ids {
    fn of<'a>(slots: impl IntoIterator<Item = &'a Slot>) -> Self {
        let mut ids = Ids::default();
        for slot in slots {
            let (kind, id, sub) = scope_columns(slot.scope());
            ids.kind.push(kind);
            ids.id.push(id.to_owned());
            ids.sub.push(sub.to_owned());
            ids.ns.push(slot.namespace().to_owned());
            ids.key.push(slot.key().to_owned());
        }
        ids
    }

    fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Postgres, PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, PgArguments> {
        q.bind(self.kind)
            .bind(self.id)
            .bind(self.sub)
            .bind(self.ns)
            .bind(self.key)
    }
}

/// A version as PostgreSQL's BIGINT.
pub(crate) fn to_i64(version: u64) -> Result<i64, PgError> {
    i64::try_from(version).map_err(|_| PgError::VersionRange { version })
}

/// Reads slots with their scope floors; `FOR UPDATE` locks the rows that exist, one index
/// lookup per slot in primary-key order (so two transactions never wait on each other in a
/// cycle). The LATERAL form keeps the plan a parameterized index lookup however the planner
/// estimates the array's length (a generic plan of a join chose a sequential scan).
const SELECT_LOCKED: &str = "\
SELECT t.ord, l.version, l.value, l.expires_at, f.floor
FROM (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
        WITH ORDINALITY AS u(kind, scope_id, scope_sub, namespace, key, ord)
    ORDER BY kind, scope_id, scope_sub, namespace, key
) t
LEFT JOIN LATERAL (
    SELECT s.version, s.value, s.expires_at FROM slots s
    WHERE s.kind = t.kind AND s.scope_id = t.scope_id AND s.scope_sub = t.scope_sub
      AND s.namespace = t.namespace AND s.key = t.key
    FOR UPDATE
) l ON TRUE
LEFT JOIN scope_floors f ON (f.kind, f.scope_id, f.scope_sub) = (t.kind, t.scope_id, t.scope_sub)
ORDER BY t.ord";

/// Reads slots with their scope floors, without locks (slots may repeat).
const SELECT_PLAIN: &str = "\
SELECT t.ord, s.version, s.value, s.expires_at, f.floor
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
    WITH ORDINALITY AS t(kind, scope_id, scope_sub, namespace, key, ord)
LEFT JOIN LATERAL (
    SELECT s.version, s.value, s.expires_at FROM slots s
    WHERE s.kind = t.kind AND s.scope_id = t.scope_id AND s.scope_sub = t.scope_sub
      AND s.namespace = t.namespace AND s.key = t.key
) s ON TRUE
LEFT JOIN scope_floors f ON (f.kind, f.scope_id, f.scope_sub) = (t.kind, t.scope_id, t.scope_sub)
ORDER BY t.ord";

/// The stored record of each slot (raw: expiry not applied), in order; a malformed row is an
/// error for its slot only. `lock`: lock the existing rows until the transaction ends (the
/// slots must then be distinct).
pub(crate) async fn load_raw(
    conn: &mut PgConnection,
    slots: &[Slot],
    lock: bool,
) -> Result<Vec<Result<Known, PgError>>, PgError> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let sql = if lock { SELECT_LOCKED } else { SELECT_PLAIN };
    let rows = Ids::of(slots)
        .bind(sqlx::query(sql))
        .fetch_all(&mut *conn)
        .await?;
    if rows.len() != slots.len() {
        return Err(PgError::MalformedRow(RowError::new(format!(
            "a read of {} slots returned {} rows",
            slots.len(),
            rows.len()
        ))));
    }
    Ok(rows.iter().map(decode_slot_row).collect())
}

fn decode_slot_row(row: &PgRow) -> Result<Known, PgError> {
    Ok(columns::known(row, 1)?)
}

/// Writes `records` (each slot once) in one `INSERT … ON CONFLICT DO UPDATE`, in
/// primary-key order: a slot whose row this transaction read (`existed`: the row is locked)
/// is updated; a slot that had no row is inserted. Returns the JSON bytes of the logged
/// versions if every row was written: `None` means another transaction created one of the
/// "new" slots first, and the caller must roll back and run again on what is there now.
///
/// The statement tells the two cases apart through the sign of `updated_at` in the proposed
/// row: negative for a row that existed (the update stores it positive again), positive for
/// a new one, whose conflict therefore updates nothing. A negative value inserted (a locked
/// row gone, which the table lock of purges rules out) fails the statement's own check, and
/// the transaction rolls back. Arbiter lookups on the primary key keep the plan an
/// index probe per row, whatever the planner estimates.
///
/// The same statement appends `log` (the versions the commit made, in order) to the change
/// log once every row is written, through the `append_changes` function (0003 migration),
/// which also notifies listeners at commit.
pub(crate) async fn write(
    conn: &mut PgConnection,
    records: &[(Slot, Record)],
    existed: &[bool],
    log: &[(Slot, Record)],
    now: Timestamp,
) -> Result<Option<usize>, PgError> {
    if records.is_empty() {
        return Ok(Some(0));
    }
    let log = Versions::of(log)?;
    let bytes = log.values.iter().flatten().map(String::len).sum();
    let rows = Versions::of(records)?;
    let now = now.as_millis().max(0);
    let mut expiries = Vec::with_capacity(records.len());
    let mut updated = Vec::with_capacity(records.len());
    for ((_, rec), existed) in records.iter().zip(existed) {
        expiries.push(rec.expires_at.map(Timestamp::as_millis));
        // -0 would read as "new": existing rows are marked -(now + 1) and stored as now.
        updated.push(if *existed { -(now + 1) } else { now });
    }
    let query = rows
        .bind(sqlx::query(WRITE))
        .bind(expiries)
        .bind(updated)
        .bind(i64::try_from(records.len()).unwrap_or(i64::MAX));
    let row = log.bind(query).bind(now).fetch_one(&mut *conn).await?;
    let (written, misplaced): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if misplaced > 0 {
        return Err(PgError::MalformedRow(RowError::new(
            "a row locked by this transaction disappeared before its update",
        )));
    }
    Ok((usize::try_from(written).ok() == Some(records.len())).then_some(bytes))
}

const WRITE: &str = "\
WITH w AS (
    INSERT INTO slots (kind, scope_id, scope_sub, namespace, key, version, value, updated_at, expires_at)
    SELECT kind, scope_id, scope_sub, namespace, key, version, value, updated_at, expires_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::bigint[], $7::text[], $8::bigint[], $9::bigint[])
        AS i(kind, scope_id, scope_sub, namespace, key, version, value, expires_at, updated_at)
    ORDER BY kind, scope_id, scope_sub, namespace, key
    ON CONFLICT (kind, scope_id, scope_sub, namespace, key) DO UPDATE
        SET version = excluded.version, value = excluded.value,
            updated_at = -excluded.updated_at - 1, expires_at = excluded.expires_at
        WHERE excluded.updated_at < 0
    RETURNING updated_at
),
c AS (SELECT count(*) AS written, count(*) FILTER (WHERE updated_at < 0) AS misplaced FROM w)
SELECT written, misplaced,
    CASE WHEN written = $10 AND misplaced = 0
        THEN append_changes($11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                            $16::bigint[], $17::text[], $18::bigint)
    END
FROM c";

/// Slot records as parallel columns: identities, versions, value texts.
struct Versions {
    ids: Ids,
    versions: Vec<i64>,
    values: Vec<Option<String>>,
}

impl Versions {
    fn of(records: &[(Slot, Record)]) -> Result<Self, PgError> {
        let mut versions = Vec::with_capacity(records.len());
        let mut values = Vec::with_capacity(records.len());
        for (_, rec) in records {
            versions.push(to_i64(rec.version)?);
            values.push(rec.value.as_ref().map(rows::value_text).transpose()?);
        }
        Ok(Versions {
            ids: Ids::of(records.iter().map(|(s, _)| s)),
            versions,
            values,
        })
    }

    fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Postgres, PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, PgArguments> {
        self.ids.bind(q).bind(self.versions).bind(self.values)
    }
}

/// Deletes the rows of `slots` (a restore replaces them whole; the caller holds the table
/// lock).
pub(crate) async fn delete_rows(conn: &mut PgConnection, slots: &[Slot]) -> Result<(), PgError> {
    Ids::of(slots)
        .bind(sqlx::query(
            "DELETE FROM slots s USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
             AS d(kind, scope_id, scope_sub, namespace, key) \
             WHERE s.kind = d.kind AND s.scope_id = d.scope_id AND s.scope_sub = d.scope_sub \
               AND s.namespace = d.namespace AND s.key = d.key",
        ))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Tombstones every live slot of a scope, raising each version by one.
pub(crate) async fn clear(
    conn: &mut PgConnection,
    scope: &Scope,
    now: Timestamp,
) -> Result<u64, PgError> {
    let (kind, id, sub) = scope_columns(scope);
    // The tombstones are logged by the same statement, after the update (see `WRITE`).
    let logged: i64 = sqlx::query_scalar(
        "WITH c AS ( \
           UPDATE slots SET version = version + 1, value = NULL, expires_at = NULL, updated_at = $4 \
           WHERE kind = $1 AND scope_id = $2 AND scope_sub = $3 \
             AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > $4) \
           RETURNING kind, scope_id, scope_sub, namespace, key, version) \
         SELECT append_changes(array_agg(kind ORDER BY namespace, key), \
           array_agg(scope_id ORDER BY namespace, key), array_agg(scope_sub ORDER BY namespace, key), \
           array_agg(namespace ORDER BY namespace, key), array_agg(key ORDER BY namespace, key), \
           array_agg(version ORDER BY namespace, key), array_agg(NULL::text), $4) FROM c",
    )
    .bind(kind)
    .bind(id)
    .bind(sub)
    .bind(now.as_millis())
    .fetch_one(&mut *conn)
    .await?;
    Ok(logged.max(0) as u64)
}

/// Raises scope floors one above the highest version among the deleted rows (`d`).
const RAISE_FLOORS: &str = "\
INSERT INTO scope_floors (kind, scope_id, scope_sub, floor)
SELECT kind, scope_id, scope_sub, max(version) + 1 FROM d GROUP BY kind, scope_id, scope_sub
ON CONFLICT (kind, scope_id, scope_sub) DO UPDATE SET floor = GREATEST(scope_floors.floor, excluded.floor)";

/// Removes every row of a scope, raising its floor one above the highest version removed. The
/// caller holds the table lock.
pub(crate) async fn purge_scope(conn: &mut PgConnection, scope: &Scope) -> Result<u64, PgError> {
    let (kind, id, sub) = scope_columns(scope);
    let sql = format!(
        "WITH d AS (DELETE FROM slots WHERE kind = $1 AND scope_id = $2 AND scope_sub = $3 \
         RETURNING kind, scope_id, scope_sub, version), \
         f AS ({RAISE_FLOORS}) SELECT count(*) FROM d"
    );
    let n: i64 = sqlx::query_scalar(&sql)
        .bind(kind)
        .bind(id)
        .bind(sub)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n.max(0) as u64)
}

/// Removes every expired row, raising each scope's floor one above the highest version
/// removed. The caller holds the table lock.
pub(crate) async fn purge_expired(conn: &mut PgConnection, now: Timestamp) -> Result<u64, PgError> {
    let sql = format!(
        "WITH d AS (DELETE FROM slots \
         WHERE value IS NOT NULL AND expires_at IS NOT NULL AND expires_at <= $1 \
         RETURNING kind, scope_id, scope_sub, version), \
         f AS ({RAISE_FLOORS}) SELECT count(*) FROM d"
    );
    let n: i64 = sqlx::query_scalar(&sql)
        .bind(now.as_millis())
        .fetch_one(&mut *conn)
        .await?;
    Ok(n.max(0) as u64)
}

/// Deletes changes committed before `cutoff`.
pub(crate) async fn trim_changes(
    conn: &mut PgConnection,
    cutoff: Timestamp,
) -> Result<u64, PgError> {
    // Everything before the oldest change at or after the cutoff (all of it if none is): a
    // prefix in sequence order, so a reader never finds a hole. `at` is each node's own clock,
    // and with clocks apart a newer change can carry an older time than one before it.
    Ok(sqlx::query(
        "DELETE FROM changes WHERE seq < COALESCE( \
           (SELECT seq FROM changes WHERE at >= $1 ORDER BY seq LIMIT 1), \
           (SELECT max(seq) + 1 FROM changes))",
    )
    .bind(cutoff.as_millis())
    .execute(&mut *conn)
    .await?
    .rows_affected())
}
