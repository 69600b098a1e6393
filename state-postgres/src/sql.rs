//! The store's statements. Slot identities travel as parallel arrays (`unnest`), so every
//! statement has one fixed shape whatever the number of slots: the server prepares it once
//! per connection.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use state_core::rows::{self, scope_columns};
use state_core::{Page, Record, Scope, ScopeKind, Slot, SlotKey, Timestamp};
use state_sql::BackendError as _;
use state_sql::columns::{self, CHANGE_COLUMNS};

use crate::error::PgError;

/// What a slot holds, and whether it has a row (an absent slot reads at its scope's floor).
pub(crate) type Known = (Record, bool);

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
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
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

fn to_u64(v: i64, what: &str) -> Result<u64, PgError> {
    Ok(rows::stored_u64(v, what)?)
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
        return Err(PgError::MalformedRow {
            reason: format!(
                "a read of {} slots returned {} rows",
                slots.len(),
                rows.len()
            ),
            version: None,
            expires_at: None,
            raw: None,
        });
    }
    Ok(rows.iter().map(decode_slot_row).collect())
}

fn decode_slot_row(row: &PgRow) -> Result<Known, PgError> {
    Ok(columns::known(row, 1)?)
}

/// Visible records of `slots` at `now`; a malformed row fails the read, naming its slot.
pub(crate) async fn load_many(
    conn: &mut PgConnection,
    slots: &[Slot],
    now: Timestamp,
) -> Result<Vec<Record>, state_core::Error> {
    let raw = load_raw(conn, slots, false).await?;
    columns::visible(raw, slots, now)
}

/// Every stored row of `scope` (`None`: of the store) in one statement — one snapshot —
/// ordered by scope, namespace and key, visible at `now`; a row that cannot be read is its
/// own error, naming its slot when its identity is valid.
pub(crate) async fn load_rows(
    conn: &mut PgConnection,
    scope: Option<&Scope>,
    now: Timestamp,
) -> Result<Vec<Result<(Slot, Record), state_core::Error>>, state_core::Error> {
    const HEAD: &str = "SELECT kind, scope_id, scope_sub, namespace, key, version, value, expires_at \
        FROM slots ";
    let rows = match scope {
        Some(s) => {
            let (kind, id, sub) = scope_columns(s);
            let sql = format!(
                "{HEAD}WHERE kind = $1 AND scope_id = $2 AND scope_sub = $3 ORDER BY namespace, key"
            );
            sqlx::query(&sql)
                .bind(kind)
                .bind(id)
                .bind(sub)
                .fetch_all(&mut *conn)
                .await
        }
        None => {
            let sql = format!("{HEAD}ORDER BY kind, scope_id, scope_sub, namespace, key");
            sqlx::query(&sql).fetch_all(&mut *conn).await
        }
    }
    .map_err(PgError::from)?;
    Ok(rows
        .iter()
        .map(|row| {
            columns::slot_row(row, now).map_err(|(slot, e)| PgError::from(e).into_state(slot))
        })
        .collect())
}

/// Keys of a scope holding a live value, in (namespace, key) order, after the cursor. Each
/// variant states only its own conditions, so each is a seek on the primary key.
pub(crate) async fn list_keys(
    conn: &mut PgConnection,
    scope: &Scope,
    namespace: Option<&str>,
    after: Option<&SlotKey>,
    limit: usize,
    now: Timestamp,
) -> Result<Page<SlotKey>, state_core::Error> {
    state_core::check_page_limit(limit)?;
    let Some(after) = columns::key_cursor(namespace, after) else {
        return Ok(Page::from_iter([], limit));
    };
    let (kind, id, sub) = scope_columns(scope);
    let head = "SELECT namespace, key FROM slots WHERE kind = $1 AND scope_id = $2 AND scope_sub = $3 \
                AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > $4) ";
    let tail = match (namespace.is_some(), after.is_some()) {
        (false, false) => "",
        (true, false) => "AND namespace = $6 ",
        (false, true) => "AND (namespace, key) > ($6, $7) ",
        (true, true) => "AND namespace = $6 AND key > $7 ",
    };
    let sql = format!("{head}{tail}ORDER BY namespace, key LIMIT $5");
    let mut q = sqlx::query(&sql)
        .bind(kind)
        .bind(id)
        .bind(sub)
        .bind(now.as_millis())
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
    match (namespace, after) {
        (Some(ns), Some(a)) => q = q.bind(ns).bind(&a.key),
        (Some(ns), None) => q = q.bind(ns),
        (None, Some(a)) => q = q.bind(&a.namespace).bind(&a.key),
        (None, None) => {}
    }
    let rows = q.fetch_all(&mut *conn).await.map_err(PgError::from)?;
    Ok(Page::from_iter(columns::keys::<PgError>(&rows)?, limit))
}

/// Scopes holding a live value (`live`) or any row, optionally of one kind, after the cursor.
pub(crate) async fn list_scopes(
    conn: &mut PgConnection,
    kind: Option<ScopeKind>,
    after: Option<&Scope>,
    limit: usize,
    live: Option<Timestamp>,
) -> Result<Page<Scope>, state_core::Error> {
    state_core::check_page_limit(limit)?;
    let mut sql = String::from("SELECT DISTINCT kind, scope_id, scope_sub FROM slots WHERE TRUE ");
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if live.is_some() {
        let p = next();
        sql += &format!("AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > ${p}) ");
    }
    if kind.is_some() {
        let p = next();
        sql += &format!("AND kind = ${p} ");
    }
    if after.is_some() {
        let (a, b, c) = (next(), next(), next());
        sql += &format!("AND (kind, scope_id, scope_sub) > (${a}, ${b}, ${c}) ");
    }
    sql += "ORDER BY kind, scope_id, scope_sub LIMIT $1";
    let mut q = sqlx::query(&sql).bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
    if let Some(now) = live {
        q = q.bind(now.as_millis());
    }
    if let Some(k) = kind {
        q = q.bind(k.as_str());
    }
    if let Some((k, i, s)) = after.map(scope_columns) {
        q = q.bind(k).bind(i).bind(s);
    }
    let rows = q.fetch_all(&mut *conn).await.map_err(PgError::from)?;
    Ok(Page::from_iter(columns::scopes::<PgError>(&rows)?, limit))
}

/// Writes `records` (each slot once) in one `INSERT … ON CONFLICT DO UPDATE`, in
/// primary-key order: a slot whose row this transaction read (`existed`: the row is locked)
/// is updated; a slot that had no row is inserted. Returns whether every row was written:
/// `false` means another transaction created one of the "new" slots first, and the caller
/// must roll back and run again on what is there now.
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
) -> Result<bool, PgError> {
    if records.is_empty() {
        return Ok(true);
    }
    let log = Versions::of(log)?;
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
        return Err(PgError::MalformedRow {
            reason: "a row locked by this transaction disappeared before its update".into(),
            version: None,
            expires_at: None,
            raw: None,
        });
    }
    Ok(usize::try_from(written).ok() == Some(records.len()))
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
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
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

/// Changes after `after` passing `filter`, in sequence order (sequence order is commit
/// order: see the 0003 migration); [`ChangesTrimmed`] if the retention removed one after
/// `after` (read in the same statement, so the same snapshot, as the changes: migration
/// 0004).
///
/// [`ChangesTrimmed`]: state_core::Error::ChangesTrimmed
pub(crate) async fn read_changes(
    conn: &mut PgConnection,
    after: u64,
    filter: &state_core::ChangeFilter,
    limit: usize,
) -> Result<Vec<state_core::Change>, state_core::Error> {
    let (scope_kind, id, sub) = rows::filter_scope_columns(filter);
    // One row at least: the watermark, with the changes (if any) beside it.
    let sql = format!(
        "SELECT t.through, c.* FROM changes_trimmed t LEFT JOIN LATERAL (\
         SELECT {CHANGE_COLUMNS} WHERE seq > $1 AND ($2::text IS NULL OR kind = $2) \
         AND ($3::text IS NULL OR (kind = $8 AND scope_id = $3 AND scope_sub = $4)) \
         AND ($5::text IS NULL OR namespace = $5) AND ($6::text IS NULL OR key = $6) \
         ORDER BY seq LIMIT $7) c ON true WHERE t.id = 0 ORDER BY c.seq"
    );
    let rows = sqlx::query(&sql)
        .bind(rows::log_position(after))
        .bind(filter.kind.map(|k| k.as_str()))
        .bind(id)
        .bind(sub)
        .bind(filter.namespace.as_deref())
        .bind(filter.key.as_deref())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(scope_kind)
        .fetch_all(&mut *conn)
        .await
        .map_err(PgError::from)?;
    columns::changes_after::<PgError>(&rows, after)
}

/// The newest changes of `slot` below `before`, newest first.
pub(crate) async fn slot_history(
    conn: &mut PgConnection,
    slot: &Slot,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<state_core::Change>, state_core::Error> {
    let (kind, id, sub) = scope_columns(slot.scope());
    let sql = format!(
        "SELECT {CHANGE_COLUMNS} WHERE kind = $1 AND scope_id = $2 AND scope_sub = $3 \
         AND namespace = $4 AND key = $5 AND seq < $6 ORDER BY seq DESC LIMIT $7"
    );
    let rows = sqlx::query(&sql)
        .bind(kind)
        .bind(id)
        .bind(sub)
        .bind(slot.namespace())
        .bind(slot.key())
        .bind(before.map_or(i64::MAX, rows::log_position))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(PgError::from)?;
    rows.iter()
        .map(|row| columns::change::<PgError>(row, 0))
        .collect()
}

/// The newest sequence number in the log (0: none).
pub(crate) async fn last_change(conn: &mut PgConnection) -> Result<u64, state_core::Error> {
    // A log its retention emptied still ends at the newest change it removed (a reader
    // starting there must not be told it missed anything).
    let seq: i64 = sqlx::query_scalar(
        "SELECT GREATEST(COALESCE(max(seq), 0), \
         (SELECT through FROM changes_trimmed WHERE id = 0)) FROM changes",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(PgError::from)?;
    Ok(to_u64(seq, "a sequence number")?)
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
