//! The reads every SQL store serves alike — whole rows, key and scope listings, the change
//! log — as one SQL text each, valid in every backend's dialect: parameters are numbered
//! (`$1`…, which SQLite binds by number as PostgreSQL does), and every statement binds the
//! same parameters in the same order whatever parts of it a call uses, so a backend only runs
//! them ([`Backend::fetch`]). What a dialect spells its own way is the backend's constant
//! ([`Backend::LAST_CHANGE`], [`Backend::QUOTED_ROW`]).

use std::sync::OnceLock;

use state_core::backend::rows::{self, scope_columns};
use state_core::{
    Change, ChangeFilter, Error, Page, Record, Scope, ScopeKind, Slot, SlotKey, Timestamp,
};

use crate::backend::{Backend, BackendError, Conn, Row, Rows};
use crate::columns::{self, CHANGE_COLUMNS, Columns};

/// A parameter of a statement this crate runs through [`Backend::fetch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param<'a> {
    /// An INTEGER (BIGINT).
    Int(i64),
    /// A TEXT, or NULL.
    Text(Option<&'a str>),
    /// A BLOB (BYTEA).
    Bytes(&'a [u8]),
}

fn text(s: &str) -> Param<'_> {
    Param::Text(Some(s))
}

/// A count as an INTEGER parameter (a `LIMIT`).
fn count(n: usize) -> Param<'static> {
    Param::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Runs `sql` on `conn`, the error as a `state_core::Error`.
async fn fetch<'a, B: Backend>(
    conn: &'a mut Conn<B>,
    sql: &'a str,
    params: &'a [Param<'a>],
) -> Result<Vec<Row<B>>, Error> {
    B::fetch(conn, sql, params).await.map_err(Into::into)
}

const KEYS_HEAD: &str = "SELECT namespace, key FROM slots \
    WHERE kind = $1 AND scope_id = $2 AND scope_sub = $3 \
    AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > $4) ";

/// The statement listing a scope's live keys: `ns` adds a namespace filter (`$6`), `after` a
/// cursor (`$6, $7` without a filter; the key `$7` with one). Each variant states only its
/// own conditions, so every one is a seek on the primary key (an `$x IS NULL OR …`
/// condition would defeat the index). Public for query-plan tests.
pub fn list_keys_sql(ns: bool, after: bool) -> &'static str {
    static SQL: [OnceLock<String>; 4] = [const { OnceLock::new() }; 4];
    let tail = match (ns, after) {
        (false, false) => "",
        (true, false) => "AND namespace = $6 ",
        (false, true) => "AND (namespace, key) > ($6, $7) ",
        (true, true) => "AND namespace = $6 AND key > $7 ",
    };
    SQL[usize::from(ns) * 2 + usize::from(after)]
        .get_or_init(|| format!("{KEYS_HEAD}{tail}ORDER BY namespace, key LIMIT $5"))
}

/// The statement listing scopes: `live` keeps those holding a live value at `$2`, `kind`
/// those of kind `$3`, `after` those after the cursor `$4, $5, $6`; the limit is `$1`. Each
/// variant walks the primary key from its cursor. Public for query-plan tests.
pub fn list_scopes_sql(live: bool, kind: bool, after: bool) -> &'static str {
    static SQL: [OnceLock<String>; 8] = [const { OnceLock::new() }; 8];
    let i = usize::from(live) * 4 + usize::from(kind) * 2 + usize::from(after);
    SQL[i].get_or_init(|| {
        let mut sql =
            String::from("SELECT DISTINCT kind, scope_id, scope_sub FROM slots WHERE TRUE ");
        if live {
            sql += "AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > $2) ";
        }
        if kind {
            sql += "AND kind = $3 ";
        }
        if after {
            sql += "AND (kind, scope_id, scope_sub) > ($4, $5, $6) ";
        }
        sql + "ORDER BY kind, scope_id, scope_sub LIMIT $1"
    })
}

/// Each slot's live record (absent: never written, deleted or expired), in one snapshot; a
/// malformed row fails the read, naming its slot.
pub(crate) async fn load_many<B: Backend>(
    conn: &mut Conn<B>,
    slots: &[Slot],
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    let known = B::load_known(conn, slots).await.map_err(Into::into)?;
    columns::visible(known, slots, now)
}

/// Every stored row of `scope` (`None`: of the store) in one statement — one snapshot —
/// ordered by scope, namespace and key, visible at `now`. A row that cannot be read is its
/// own error: its slot when its identity is valid, the whole row as the database quotes it
/// in the reason, and its stored value text (or quoted value) for a repair.
pub(crate) async fn load_rows<B: Backend>(
    conn: &mut Conn<B>,
    scope: Option<&Scope>,
    now: Timestamp,
) -> Result<Rows, Error> {
    let head = format!(
        "SELECT kind, scope_id, scope_sub, namespace, key, version, value, expires_at, {} \
         FROM slots ",
        B::QUOTED_ROW
    );
    let (sql, params) = match scope.map(scope_columns) {
        Some((kind, id, sub)) => (
            format!(
                "{head}WHERE kind = $1 AND scope_id = $2 AND scope_sub = $3 ORDER BY namespace, key"
            ),
            vec![text(kind), text(id), text(sub)],
        ),
        None => (
            format!("{head}ORDER BY kind, scope_id, scope_sub, namespace, key"),
            Vec::new(),
        ),
    };
    let rows = fetch::<B>(conn, &sql, &params).await?;
    Ok(rows.iter().map(|row| quoted_row::<B>(row, now)).collect())
}

/// A row of [`load_rows`]; one that cannot be read quotes the whole row as the database
/// shows it (column 8) and keeps its stored value (column 9) for a repair.
fn quoted_row<B: Backend>(row: &Row<B>, now: Timestamp) -> Result<(Slot, Record), Error> {
    let (slot, mut e) = match columns::slot_row(row, now) {
        Ok(read) => return Ok(read),
        Err(failed) => failed,
    };
    let shown = row.text(8).unwrap_or_default();
    e.reason = format!("{} (the stored row: {shown})", e.reason);
    e.raw = e.raw.or_else(|| row.text_or_null(9).ok().flatten());
    Err(B::Error::from(e).into_state(slot))
}

/// Keys of a scope holding a live value, in (namespace, key) order, after the cursor.
pub(crate) async fn list_keys<B: Backend>(
    conn: &mut Conn<B>,
    scope: &Scope,
    namespace: Option<&str>,
    after: Option<&SlotKey>,
    limit: usize,
    now: Timestamp,
) -> Result<Page<SlotKey>, Error> {
    let Some((sql, params)) = keys_statement(scope, namespace, after, limit, now)? else {
        return Ok(Page::from_iter([], limit));
    };
    let rows = fetch::<B>(conn, sql, &params).await?;
    Ok(Page::from_iter(columns::keys::<B::Error>(&rows)?, limit))
}

/// The statement of [`list_keys`] and its parameters; `None` when the page is empty
/// whatever is stored (a cursor past the namespace).
pub(crate) fn keys_statement<'a>(
    scope: &'a Scope,
    namespace: Option<&'a str>,
    after: Option<&'a SlotKey>,
    limit: usize,
    now: Timestamp,
) -> Result<Option<(&'static str, Vec<Param<'a>>)>, Error> {
    state_core::backend::check_page_limit(limit)?;
    let Some(after) = columns::key_cursor(namespace, after) else {
        return Ok(None);
    };
    let (kind, id, sub) = scope_columns(scope);
    let mut params = vec![
        text(kind),
        text(id),
        text(sub),
        Param::Int(now.as_millis()),
        count(limit + 1),
    ];
    match (namespace, after) {
        (Some(ns), Some(a)) => params.extend([text(ns), text(&a.key)]),
        (Some(ns), None) => params.push(text(ns)),
        (None, Some(a)) => params.extend([text(&a.namespace), text(&a.key)]),
        (None, None) => {}
    }
    let sql = list_keys_sql(namespace.is_some(), after.is_some());
    Ok(Some((sql, params)))
}

/// Scopes holding a live value at `live` (`None`: any row, tombstones and expired slots
/// included), optionally of one kind, after the cursor.
pub(crate) async fn list_scopes<B: Backend>(
    conn: &mut Conn<B>,
    kind: Option<ScopeKind>,
    after: Option<&Scope>,
    limit: usize,
    live: Option<Timestamp>,
) -> Result<Page<Scope>, Error> {
    let (sql, params) = scopes_statement(kind, after, limit, live)?;
    let rows = fetch::<B>(conn, sql, &params).await?;
    Ok(Page::from_iter(columns::scopes::<B::Error>(&rows)?, limit))
}

/// The statement of [`list_scopes`] and its parameters.
pub(crate) fn scopes_statement(
    kind: Option<ScopeKind>,
    after: Option<&Scope>,
    limit: usize,
    live: Option<Timestamp>,
) -> Result<(&'static str, [Param<'_>; 6]), Error> {
    state_core::backend::check_page_limit(limit)?;
    let (ak, ai, asub) = after
        .map(scope_columns)
        .map_or((None, None, None), |(k, i, s)| (Some(k), Some(i), Some(s)));
    let params = [
        count(limit + 1),
        Param::Int(live.map_or(0, Timestamp::as_millis)),
        Param::Text(kind.map(ScopeKind::as_str)),
        Param::Text(ak),
        Param::Text(ai),
        Param::Text(asub),
    ];
    let sql = list_scopes_sql(live.is_some(), kind.is_some(), after.is_some());
    Ok((sql, params))
}

/// Changes after `after` passing `filter`, in sequence order; [`Error::ChangesTrimmed`] if
/// the retention removed one after `after` (the watermark is read in the same statement, so
/// the same snapshot, as the changes).
pub(crate) async fn read_changes<B: Backend>(
    conn: &mut Conn<B>,
    after: u64,
    filter: &ChangeFilter,
    limit: usize,
) -> Result<Vec<Change>, Error> {
    let (sql, params) = changes_statement(after, filter, limit);
    let rows = fetch::<B>(conn, sql, &params).await?;
    columns::changes_after::<B::Error>(&rows, after)
}

/// The statement of [`read_changes`] and its parameters: one row at least, the watermark,
/// with the changes (if any) beside it.
pub(crate) fn changes_statement(
    after: u64,
    filter: &ChangeFilter,
    limit: usize,
) -> (&'static str, [Param<'_>; 8]) {
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT t.through, c.* FROM changes_trimmed t LEFT JOIN (\
             SELECT {CHANGE_COLUMNS} WHERE seq > $1 AND ($2 IS NULL OR kind = $2) \
             AND ($3 IS NULL OR (kind = $8 AND scope_id = $3 AND scope_sub = $4)) \
             AND ($5 IS NULL OR namespace = $5) AND ($6 IS NULL OR key = $6) \
             ORDER BY seq LIMIT $7) c ON TRUE WHERE t.id = 0 ORDER BY c.seq"
        )
    });
    let (scope_kind, id, sub) = rows::filter_scope_columns(filter);
    let params = [
        Param::Int(rows::log_position(after)),
        Param::Text(filter.kind.map(ScopeKind::as_str)),
        Param::Text(id),
        Param::Text(sub),
        Param::Text(filter.namespace.as_deref()),
        Param::Text(filter.key.as_deref()),
        count(limit),
        Param::Text(scope_kind),
    ];
    (sql, params)
}

/// The newest changes of `slot` below `before`, newest first.
pub(crate) async fn slot_history<B: Backend>(
    conn: &mut Conn<B>,
    slot: &Slot,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Change>, Error> {
    let (sql, params) = history_statement::<B>(slot, before, limit);
    let rows = fetch::<B>(conn, sql, &params).await?;
    rows.iter()
        .map(|row| columns::change::<B::Error, _>(row, 0))
        .collect()
}

/// The statement of [`slot_history`] ([`Backend::HISTORY`]) and its parameters.
pub(crate) fn history_statement<B: Backend>(
    slot: &Slot,
    before: Option<u64>,
    limit: usize,
) -> (&'static str, [Param<'_>; 7]) {
    let (kind, id, sub) = scope_columns(slot.scope());
    let params = [
        text(kind),
        text(id),
        text(sub),
        text(slot.namespace()),
        text(slot.key()),
        Param::Int(before.map_or(i64::MAX, rows::log_position)),
        count(limit),
    ];
    (B::HISTORY, params)
}

/// The newest sequence number of the log (0: none), by [`Backend::LAST_CHANGE`].
pub(crate) async fn last_change<B: Backend>(conn: &mut Conn<B>) -> Result<u64, Error> {
    let rows = fetch::<B>(conn, B::LAST_CHANGE, &[]).await?;
    let malformed = |reason: String| B::Error::from(rows::RowError::new(reason)).into_state(None);
    let seq = rows
        .first()
        .ok_or_else(|| malformed("the newest sequence number is missing".into()))?
        .int(0)
        .map_err(|e| malformed(format!("the newest sequence number: {e}")))?;
    rows::stored_u64(seq, "a sequence number").map_err(|e| B::Error::from(e).into_state(None))
}
