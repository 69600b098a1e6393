//! SQL of the store: statements built once per size bucket (so the prepared-statement cache
//! holds a handful of them), row decoding, and every read.

use std::sync::OnceLock;

use serde_json::Value;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments, Row, SqliteConnection};
use state_core::{Page, Record, Scope, ScopeKind, Slot, SlotKey, Timestamp};

use crate::error::SqliteError;

/// The most slots one SELECT reads (6 parameters each; SQLite allows 32766).
pub(crate) const SELECT_MAX: usize = 4096;
/// The most rows one upsert writes (9 parameters each).
pub(crate) const UPSERT_MAX: usize = 2048;

const BUCKETS: usize = 13; // 1, 2, 4, …, 4096

/// The bucket a statement of `n` rows uses: the next power of two. Rows are padded by
/// repeating the last one (harmless: duplicate reads, idempotent duplicate upserts).
pub(crate) fn bucket(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

fn cached(
    cache: &'static [OnceLock<String>; BUCKETS],
    rows: usize,
    build: fn(usize) -> String,
) -> &'static str {
    let i = rows.trailing_zeros() as usize;
    cache[i.min(BUCKETS - 1)].get_or_init(|| build(rows))
}

fn values(rows: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(","));
    vec![row; rows].join(",")
}

/// Reads `rows` requested slots (index, kind, id, sub, namespace, key) with their scope floors.
pub fn select_slots(rows: usize) -> &'static str {
    static CACHE: [OnceLock<String>; BUCKETS] = [const { OnceLock::new() }; BUCKETS];
    cached(&CACHE, rows, |rows| select_text(rows, ""))
}

/// [`select_slots`] preceded by `BEGIN IMMEDIATE` in the same call: a multi-statement string
/// runs all its statements in one hand-off to sqlx's worker thread.
fn begin_and_select_slots(rows: usize) -> &'static str {
    static CACHE: [OnceLock<String>; BUCKETS] = [const { OnceLock::new() }; BUCKETS];
    cached(&CACHE, rows, |rows| select_text(rows, "BEGIN IMMEDIATE; "))
}

fn select_text(rows: usize, prefix: &str) -> String {
    format!(
        "{prefix}WITH req(i, kind, scope_id, scope_sub, namespace, key) AS (VALUES {}) \
         SELECT req.i, s.version, s.value, s.expires_at, f.floor FROM req \
         LEFT JOIN slots s ON s.kind = req.kind AND s.scope_id = req.scope_id \
           AND s.scope_sub = req.scope_sub AND s.namespace = req.namespace AND s.key = req.key \
         LEFT JOIN scope_floors f ON f.kind = req.kind AND f.scope_id = req.scope_id \
           AND f.scope_sub = req.scope_sub",
        values(rows, 6)
    )
}

/// Writes `rows` slot records.
fn upsert_slots(rows: usize) -> &'static str {
    static CACHE: [OnceLock<String>; BUCKETS] = [const { OnceLock::new() }; BUCKETS];
    cached(&CACHE, rows, |rows| upsert_text(rows, ""))
}

/// [`upsert_slots`] followed by `COMMIT` in the same call.
fn upsert_slots_and_commit(rows: usize) -> &'static str {
    static CACHE: [OnceLock<String>; BUCKETS] = [const { OnceLock::new() }; BUCKETS];
    cached(&CACHE, rows, |rows| upsert_text(rows, "; COMMIT"))
}

fn upsert_text(rows: usize, suffix: &str) -> String {
    format!(
        "INSERT INTO slots (kind, scope_id, scope_sub, namespace, key, version, value, \
         updated_at, expires_at) VALUES {} \
         ON CONFLICT (kind, scope_id, scope_sub, namespace, key) DO UPDATE SET \
         version = excluded.version, value = excluded.value, \
         updated_at = excluded.updated_at, expires_at = excluded.expires_at{suffix}",
        values(rows, 9)
    )
}

/// The three identity columns of a scope.
pub(crate) fn scope_cols(scope: &Scope) -> (&'static str, &str, &str) {
    let (id, sub) = scope.parts();
    (scope.kind().as_str(), id, sub.unwrap_or(""))
}

fn bind_scope(args: &mut SqliteArguments<'_>, scope: &Scope) -> Result<(), SqliteError> {
    let (kind, id, sub) = scope_cols(scope);
    add(args, kind.to_owned())?;
    add(args, id.to_owned())?;
    add(args, sub.to_owned())
}

fn add<T>(args: &mut SqliteArguments<'_>, v: T) -> Result<(), SqliteError>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + 'static,
{
    args.add(v).map_err(|e| SqliteError::MalformedRow {
        reason: format!("cannot bind a parameter: {e}"),
        version: None,
    })
}

/// A version as SQLite's INTEGER.
pub(crate) fn to_i64(version: u64) -> Result<i64, SqliteError> {
    i64::try_from(version).map_err(|_| SqliteError::VersionRange { version })
}

fn to_u64(v: i64, what: &str) -> Result<u64, SqliteError> {
    u64::try_from(v).map_err(|_| SqliteError::MalformedRow {
        reason: format!("{what} is negative ({v})"),
        version: None,
    })
}

fn json(text: Option<String>) -> Result<Option<Value>, SqliteError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| SqliteError::MalformedRow {
            reason: format!("the value is not JSON ({e}): {:.80}", t),
            version: None,
        })
    })
    .transpose()
}

/// The stored record of each slot (raw: expiry not applied), in order; a malformed row is an
/// error for its slot only.
pub(crate) async fn load_raw(
    conn: &mut SqliteConnection,
    slots: &[Slot],
    begin: bool,
) -> Result<Vec<Result<Record, SqliteError>>, SqliteError> {
    if begin && slots.is_empty() {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    }
    let mut out: Vec<Option<Result<Record, SqliteError>>> = vec![None; slots.len()];
    for (chunk_no, chunk) in slots.chunks(SELECT_MAX).enumerate() {
        let rows = bucket(chunk.len());
        let mut args = SqliteArguments::default();
        for i in 0..rows {
            let s = &chunk[i.min(chunk.len() - 1)];
            let index = chunk_no * SELECT_MAX + i.min(chunk.len() - 1);
            add(&mut args, index as i64)?;
            bind_scope(&mut args, s.scope())?;
            add(&mut args, s.namespace().to_owned())?;
            add(&mut args, s.key().to_owned())?;
        }
        let sql = if begin && chunk_no == 0 {
            begin_and_select_slots(rows)
        } else {
            select_slots(rows)
        };
        let fetched = sqlx::query_with(sql, args).fetch_all(&mut *conn).await?;
        for row in fetched {
            let i: i64 = row.try_get(0)?;
            let i = usize::try_from(i).map_err(|_| SqliteError::MalformedRow {
                reason: "bad index".into(),
                version: None,
            })?;
            if let Some(slot_out) = out.get_mut(i) {
                *slot_out = Some(decode_slot_row(&row));
            }
        }
    }
    out.into_iter()
        .map(|r| {
            r.ok_or_else(|| SqliteError::MalformedRow {
                reason: "a requested slot was not returned".into(),
                version: None,
            })
        })
        .collect()
}

fn decode_slot_row(row: &SqliteRow) -> Result<Record, SqliteError> {
    // A column of the wrong SQL type is this slot's problem, not the whole read's.
    let col = |e: sqlx::Error| SqliteError::MalformedRow {
        reason: format!("a column has the wrong type: {e}"),
        version: None,
    };
    let version: Option<i64> = row.try_get(1).map_err(col)?;
    let floor: Option<i64> = row.try_get(4).map_err(col)?;
    let Some(v) = version else {
        return Ok(Record::absent(
            floor.map_or(Ok(0), |f| to_u64(f, "a scope floor"))?,
        ));
    };
    let version = to_u64(v, "a version")?;
    // A readable version with an unreadable value: say which version, so writes that replace
    // the value whole can repair the row.
    let with_version = |e: SqliteError| match e {
        SqliteError::MalformedRow { reason, .. } => SqliteError::MalformedRow {
            reason,
            version: Some(version),
        },
        other => other,
    };
    let value = json(row.try_get(2).map_err(col).map_err(with_version)?).map_err(with_version)?;
    let expires_at: Option<i64> = row.try_get(3).map_err(col).map_err(with_version)?;
    Ok(Record {
        version,
        value,
        expires_at: expires_at.map(Timestamp::from_millis),
    })
}

/// Visible records of `slots` at `now`; a malformed row fails the read, naming its slot.
pub(crate) async fn load_many(
    conn: &mut SqliteConnection,
    slots: &[Slot],
    now: Timestamp,
) -> Result<Vec<Record>, state_core::Error> {
    let raw = load_raw(conn, slots, false)
        .await
        .map_err(state_core::Error::from)?;
    raw.into_iter()
        .zip(slots)
        .map(|(r, s)| {
            r.map(|r| r.visible(now))
                .map_err(|e| e.into_state(Some(s.clone())))
        })
        .collect()
}

/// Every stored slot of a scope (optionally one namespace), visible at `now`.
pub(crate) async fn load_scope(
    conn: &mut SqliteConnection,
    scope: &Scope,
    namespace: Option<&str>,
    now: Timestamp,
) -> Result<Vec<(SlotKey, Record)>, state_core::Error> {
    let mut args = SqliteArguments::default();
    bind_scope(&mut args, scope)?;
    add(&mut args, namespace.map(str::to_owned))?;
    let rows = sqlx::query_with(
        "SELECT namespace, key, version, value, expires_at FROM slots \
         WHERE kind = ? AND scope_id = ? AND scope_sub = ? AND (?4 IS NULL OR namespace = ?4) \
         ORDER BY namespace, key",
        args,
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(SqliteError::from)?;
    rows.iter()
        .map(|row| {
            let key = SlotKey {
                namespace: row.try_get(0).map_err(SqliteError::from)?,
                key: row.try_get(1).map_err(SqliteError::from)?,
            };
            let record = (|| {
                Ok::<_, SqliteError>(Record {
                    version: to_u64(row.try_get(2)?, "a version")?,
                    value: json(row.try_get(3)?)?,
                    expires_at: row
                        .try_get::<Option<i64>, _>(4)?
                        .map(Timestamp::from_millis),
                })
            })();
            match record {
                Ok(r) => Ok((key, r.visible(now))),
                Err(e) => {
                    let slot =
                        Slot::new(scope.clone(), key.namespace.clone(), key.key.clone()).ok();
                    Err(e.into_state(slot))
                }
            }
        })
        .collect()
}

macro_rules! keys_head {
    () => {
        "SELECT namespace, key FROM slots WHERE kind = ?1 AND scope_id = ?2 AND scope_sub = ?3 \
         AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > ?4) "
    };
}

macro_rules! scopes_head {
    () => {
        "SELECT DISTINCT kind, scope_id, scope_sub FROM slots \
         WHERE value IS NOT NULL AND (expires_at IS NULL OR expires_at > ?1) "
    };
}

/// The statement listing keys of a scope: `ns` adds a namespace filter (`?6`), `after` a
/// cursor (`?6`, `?7` without a filter; the key `?7` with one). Each variant states only its own conditions, so every one is a seek on
/// the primary key (an `?x IS NULL OR …` condition would defeat the index).
pub fn list_keys_sql(ns: bool, after: bool) -> &'static str {
    match (ns, after) {
        (false, false) => concat!(keys_head!(), "ORDER BY namespace, key LIMIT ?5"),
        (true, false) => concat!(
            keys_head!(),
            "AND namespace = ?6 ORDER BY namespace, key LIMIT ?5"
        ),
        (false, true) => concat!(
            keys_head!(),
            "AND (namespace, key) > (?6, ?7) ORDER BY namespace, key LIMIT ?5"
        ),
        (true, true) => concat!(
            keys_head!(),
            "AND namespace = ?6 AND key > ?7 ORDER BY namespace, key LIMIT ?5"
        ),
    }
}

/// The statement listing scopes: `kind` adds a kind filter (`?3`), `after` a cursor
/// (`?4`–`?6`); each variant walks the primary key from its cursor.
pub fn list_scopes_sql(kind: bool, after: bool) -> &'static str {
    match (kind, after) {
        (false, false) => concat!(
            scopes_head!(),
            "ORDER BY kind, scope_id, scope_sub LIMIT ?2"
        ),
        (true, false) => concat!(
            scopes_head!(),
            "AND kind = ?3 ORDER BY kind, scope_id, scope_sub LIMIT ?2"
        ),
        (false, true) => concat!(
            scopes_head!(),
            "AND (kind, scope_id, scope_sub) > (?4, ?5, ?6) ORDER BY kind, scope_id, scope_sub LIMIT ?2"
        ),
        (true, true) => concat!(
            scopes_head!(),
            "AND kind = ?3 AND (kind, scope_id, scope_sub) > (?4, ?5, ?6) \
             ORDER BY kind, scope_id, scope_sub LIMIT ?2"
        ),
    }
}

/// A listing parameter.
enum P {
    Text(Option<String>),
    Int(i64),
}

/// Binds `?n` parameters in order (each variant uses a gap-free prefix of `?1…?8`).
fn bind_all(values: Vec<P>) -> Result<SqliteArguments<'static>, SqliteError> {
    let mut args = SqliteArguments::default();
    for v in values {
        match v {
            P::Text(t) => add(&mut args, t)?,
            P::Int(i) => add(&mut args, i)?,
        }
    }
    Ok(args)
}

fn text(s: &str) -> P {
    P::Text(Some(s.to_owned()))
}

/// Keys of a scope holding a live value, in (namespace, key) order, after the cursor.
pub(crate) async fn list_keys(
    conn: &mut SqliteConnection,
    scope: &Scope,
    namespace: Option<&str>,
    after: Option<&SlotKey>,
    limit: usize,
    now: Timestamp,
) -> Result<Page<SlotKey>, state_core::Error> {
    state_core::check_page_limit(limit)?;
    let (kind, id, sub) = scope_cols(scope);
    let limit_plus = i64::try_from(limit + 1).unwrap_or(i64::MAX);
    let mut params = vec![
        text(kind),
        text(id),
        text(sub),
        P::Int(now.as_millis()),
        P::Int(limit_plus),
    ];
    // With a namespace filter, a cursor in that namespace seeks on the key; a cursor before it
    // means "from its start", one after it means "nothing left".
    let after = match (namespace, after) {
        (Some(ns), Some(a)) if a.namespace.as_str() < ns => None,
        (Some(ns), Some(a)) if a.namespace.as_str() > ns => return Ok(Page::from_iter([], limit)),
        (_, a) => a,
    };
    match (namespace, after) {
        (Some(ns), Some(a)) => params.extend([text(ns), text(&a.key)]),
        (Some(ns), None) => params.push(text(ns)),
        (None, Some(a)) => params.extend([text(&a.namespace), text(&a.key)]),
        (None, None) => {}
    }
    let sql = list_keys_sql(namespace.is_some(), after.is_some());
    let rows = sqlx::query_with(sql, bind_all(params)?)
        .fetch_all(&mut *conn)
        .await
        .map_err(SqliteError::from)?;
    let keys = rows
        .iter()
        .map(|r| {
            Ok(SlotKey {
                namespace: r.try_get(0)?,
                key: r.try_get(1)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(SqliteError::from)?;
    Ok(Page::from_iter(keys, limit))
}

/// Scopes holding a live value (optionally of one kind), in order, after the cursor.
pub(crate) async fn list_scopes(
    conn: &mut SqliteConnection,
    kind: Option<ScopeKind>,
    after: Option<&Scope>,
    limit: usize,
    now: Timestamp,
) -> Result<Page<Scope>, state_core::Error> {
    state_core::check_page_limit(limit)?;
    let limit_plus = i64::try_from(limit + 1).unwrap_or(i64::MAX);
    let mut params = vec![P::Int(now.as_millis()), P::Int(limit_plus)];
    if kind.is_some() || after.is_some() {
        params.push(P::Text(kind.map(|k| k.as_str().to_owned())));
    }
    if let Some((k, i, s)) = after.map(scope_cols) {
        params.extend([text(k), text(i), text(s)]);
    }
    let sql = list_scopes_sql(kind.is_some(), after.is_some());
    let rows = sqlx::query_with(sql, bind_all(params)?)
        .fetch_all(&mut *conn)
        .await
        .map_err(SqliteError::from)?;
    let scopes = rows
        .iter()
        .map(|r| {
            let kind: String = r.try_get(0).map_err(SqliteError::from)?;
            let id: String = r.try_get(1).map_err(SqliteError::from)?;
            let sub: String = r.try_get(2).map_err(SqliteError::from)?;
            let kind: ScopeKind = kind.parse()?;
            Scope::new(kind, id, (!sub.is_empty()).then_some(sub))
        })
        .collect::<Result<Vec<_>, state_core::Error>>()?;
    Ok(Page::from_iter(scopes, limit))
}

/// Writes `records` (each slot once) with chunked, bucketed multi-row upserts.
pub(crate) async fn upsert(
    conn: &mut SqliteConnection,
    records: &[(Slot, Record)],
    now: Timestamp,
    commit: bool,
) -> Result<(), SqliteError> {
    let chunks = records.len().div_ceil(UPSERT_MAX);
    for (chunk_no, chunk) in records.chunks(UPSERT_MAX).enumerate() {
        let rows = bucket(chunk.len());
        let mut args = SqliteArguments::default();
        for i in 0..rows {
            let (slot, rec) = &chunk[i.min(chunk.len() - 1)];
            bind_scope(&mut args, slot.scope())?;
            add(&mut args, slot.namespace().to_owned())?;
            add(&mut args, slot.key().to_owned())?;
            add(&mut args, to_i64(rec.version)?)?;
            let text = rec
                .value
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| SqliteError::MalformedRow {
                    reason: format!("cannot serialize: {e}"),
                    version: None,
                })?;
            add(&mut args, text)?;
            add(&mut args, now.as_millis())?;
            add(&mut args, rec.expires_at.map(Timestamp::as_millis))?;
        }
        let sql = if commit && chunk_no + 1 == chunks {
            upsert_slots_and_commit(rows)
        } else {
            upsert_slots(rows)
        };
        sqlx::query_with(sql, args).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Tombstones every live slot of a scope, raising each version by one.
pub(crate) async fn clear(
    conn: &mut SqliteConnection,
    scope: &Scope,
    now: Timestamp,
) -> Result<u64, SqliteError> {
    let mut args = SqliteArguments::default();
    bind_scope(&mut args, scope)?;
    add(&mut args, now.as_millis())?;
    let done = sqlx::query_with(
        "UPDATE slots SET version = version + 1, value = NULL, expires_at = NULL, updated_at = ?4 \
         WHERE kind = ?1 AND scope_id = ?2 AND scope_sub = ?3 \
           AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > ?4)",
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Removes every row of a scope, raising its floor to the highest version removed.
pub(crate) async fn purge_scope(
    conn: &mut SqliteConnection,
    scope: &Scope,
) -> Result<u64, SqliteError> {
    let mut args = SqliteArguments::default();
    bind_scope(&mut args, scope)?;
    sqlx::query_with(
        "INSERT INTO scope_floors (kind, scope_id, scope_sub, floor) \
         SELECT kind, scope_id, scope_sub, MAX(version) FROM slots \
         WHERE kind = ?1 AND scope_id = ?2 AND scope_sub = ?3 \
         GROUP BY kind, scope_id, scope_sub \
         ON CONFLICT (kind, scope_id, scope_sub) DO UPDATE SET floor = MAX(floor, excluded.floor)",
        args,
    )
    .execute(&mut *conn)
    .await?;
    let mut args = SqliteArguments::default();
    bind_scope(&mut args, scope)?;
    let done = sqlx::query_with(
        "DELETE FROM slots WHERE kind = ?1 AND scope_id = ?2 AND scope_sub = ?3",
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Removes every expired row, raising each scope's floor to the highest version removed.
pub(crate) async fn purge_expired(
    conn: &mut SqliteConnection,
    now: Timestamp,
) -> Result<u64, SqliteError> {
    let mut args = SqliteArguments::default();
    add(&mut args, now.as_millis())?;
    sqlx::query_with(
        "INSERT INTO scope_floors (kind, scope_id, scope_sub, floor) \
         SELECT kind, scope_id, scope_sub, MAX(version) FROM slots \
         WHERE value IS NOT NULL AND expires_at IS NOT NULL AND expires_at <= ?1 \
         GROUP BY kind, scope_id, scope_sub \
         ON CONFLICT (kind, scope_id, scope_sub) DO UPDATE SET floor = MAX(floor, excluded.floor)",
        args,
    )
    .execute(&mut *conn)
    .await?;
    let mut args = SqliteArguments::default();
    add(&mut args, now.as_millis())?;
    let done = sqlx::query_with(
        "DELETE FROM slots WHERE value IS NOT NULL AND expires_at IS NOT NULL AND expires_at <= ?1",
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
