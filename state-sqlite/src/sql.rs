//! SQL of the store: statements built once per size bucket (so the prepared-statement cache
//! holds a handful of them), row decoding, and every read.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments, Connection, Row, SqliteConnection};
use state_core::backend::rows::{self, RowError, scope_columns};
use state_core::{Record, Scope, Slot, Timestamp};
use state_sql::{Known, columns};

use crate::error::SqliteError;

/// The most slots one SELECT reads (6 parameters each; SQLite allows 32766).
pub(crate) const SELECT_MAX: usize = 4096;
/// The most versions one commit statement logs (11 parameters each).
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

fn bind_scope(args: &mut SqliteArguments<'_>, scope: &Scope) -> Result<(), SqliteError> {
    let (kind, id, sub) = scope_columns(scope);
    add(args, kind.to_owned())?;
    add(args, id.to_owned())?;
    add(args, sub.to_owned())
}

/// A slot's identity: kind, scope id, sub, namespace, key.
fn push_slot<'a>(params: &mut Vec<P<'a>>, slot: &'a Slot) {
    let (kind, id, sub) = scope_columns(slot.scope());
    params.extend([kind, id, sub, slot.namespace(), slot.key()].map(P::Str));
}

fn add<T>(args: &mut SqliteArguments<'_>, v: T) -> Result<(), SqliteError>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + 'static,
{
    args.add(v).map_err(|e| bind_error(&*e))
}

/// A version as SQLite's INTEGER.
pub(crate) fn to_i64(version: u64) -> Result<i64, SqliteError> {
    i64::try_from(version).map_err(|_| SqliteError::VersionRange { version })
}

/// Where a read of stored slots runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadIn {
    /// On its own: a read of more slots than one SELECT takes is still one snapshot, read in a
    /// transaction of sqlx's, which a dropped read rolls back (a pooled reader must never keep
    /// an old snapshot open).
    Snapshot,
    /// The committer's read path: `BEGIN IMMEDIATE` in the same call as the first SELECT (the
    /// caller commits or rolls back).
    NewWriteTransaction,
    /// Inside a transaction the caller began.
    Transaction,
}

/// The stored record of each slot (raw: expiry not applied), in order; a malformed row is an
/// error for its slot only.
pub(crate) async fn load_raw(
    conn: &mut SqliteConnection,
    slots: &[Slot],
    read_in: ReadIn,
) -> Result<Vec<Result<Known, SqliteError>>, SqliteError> {
    match read_in {
        ReadIn::Snapshot if slots.len() > SELECT_MAX => {
            let mut tx = conn.begin().await?;
            let result = load_chunks(&mut tx, slots, false).await;
            // A read-only transaction: ending it cannot lose anything.
            let _ = tx.commit().await;
            result
        }
        ReadIn::NewWriteTransaction if slots.is_empty() => {
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            Ok(Vec::new())
        }
        ReadIn::NewWriteTransaction => load_chunks(conn, slots, true).await,
        ReadIn::Snapshot | ReadIn::Transaction => load_chunks(conn, slots, false).await,
    }
}

async fn load_chunks(
    conn: &mut SqliteConnection,
    slots: &[Slot],
    begin: bool,
) -> Result<Vec<Result<Known, SqliteError>>, SqliteError> {
    let mut out: Vec<Option<Result<Known, SqliteError>>> = vec![None; slots.len()];
    for (chunk_no, chunk) in slots.chunks(SELECT_MAX).enumerate() {
        let rows = bucket(chunk.len());
        let args = bind_all(slot_params(chunk, chunk_no * SELECT_MAX))?;
        let sql = if begin && chunk_no == 0 {
            begin_and_select_slots(rows)
        } else {
            select_slots(rows)
        };
        let fetched = sqlx::query_with(sql, args).fetch_all(&mut *conn).await?;
        for row in fetched {
            let i: i64 = row.try_get(0)?;
            let i = usize::try_from(i)
                .map_err(|_| SqliteError::MalformedRow(RowError::new("bad index")))?;
            if let Some(slot_out) = out.get_mut(i) {
                *slot_out = Some(decode_slot_row(&row));
            }
        }
    }
    Ok(all_returned(out))
}

/// The parameters of [`select_slots`] for `chunk` (at most [`SELECT_MAX`] slots, the first
/// at index `first` of the read): index and identity of each, padded to its bucket by
/// repeating the last.
pub(crate) fn slot_params(chunk: &[Slot], first: usize) -> Vec<P<'_>> {
    let rows = bucket(chunk.len());
    let mut params = Vec::with_capacity(rows * 6);
    for i in 0..rows {
        let at = i.min(chunk.len() - 1);
        params.push(P::Int((first + at) as i64));
        push_slot(&mut params, &chunk[at]);
    }
    params
}

/// Each requested slot's row, in order; a slot the SELECT did not return is an error for it.
pub(crate) fn all_returned(
    out: Vec<Option<Result<Known, SqliteError>>>,
) -> Vec<Result<Known, SqliteError>> {
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(SqliteError::MalformedRow(RowError::new(
                    "a requested slot was not returned",
                )))
            })
        })
        .collect()
}

fn decode_slot_row(row: &SqliteRow) -> Result<Known, SqliteError> {
    Ok(columns::known(row, 1)?)
}

/// A statement parameter, bound through sqlx ([`bind_all`]) or on the
/// direct connection ([`crate::inline::WriteConn::run`]).
pub(crate) enum P<'a> {
    Null,
    Text(Option<String>),
    /// Borrowed text (an identity column of a slot the statement's caller holds).
    Str(&'a str),
    Int(i64),
}

impl<'a> P<'a> {
    /// The bytes it binds (an integer: 8).
    pub(crate) fn len(&self) -> usize {
        match self {
            P::Null | P::Text(None) => 0,
            P::Int(_) => 8,
            P::Text(Some(t)) => t.len(),
            P::Str(t) => t.len(),
        }
    }

    /// Binds it as parameter `i` (1-based) of a rusqlite statement.
    pub(crate) fn bind_rusqlite(
        &self,
        stmt: &mut rusqlite::Statement<'_>,
        i: usize,
    ) -> rusqlite::Result<()> {
        match self {
            P::Null | P::Text(None) => stmt.raw_bind_parameter(i, rusqlite::types::Null),
            P::Int(v) => stmt.raw_bind_parameter(i, v),
            P::Text(Some(t)) => stmt.raw_bind_parameter(i, t.as_str()),
            P::Str(t) => stmt.raw_bind_parameter(i, *t),
        }
    }

    fn int_or_null(v: Option<i64>) -> Self {
        v.map_or(P::Null, P::Int)
    }

    /// The same parameter, borrowing its text.
    fn borrowed(&self) -> P<'_> {
        match self {
            P::Null => P::Null,
            P::Int(i) => P::Int(*i),
            P::Text(None) => P::Null,
            P::Text(Some(t)) => P::Str(t),
            P::Str(t) => P::Str(t),
        }
    }
}

/// Binds parameters in order (`?` or a gap-free prefix of `?1…?n`).
fn bind_all(values: Vec<P<'_>>) -> Result<SqliteArguments<'static>, SqliteError> {
    let mut args = SqliteArguments::default();
    for v in values {
        match v {
            P::Null => add(&mut args, None::<i64>)?,
            P::Text(t) => add(&mut args, t)?,
            P::Str(t) => add(&mut args, t.to_owned())?,
            P::Int(i) => add(&mut args, i)?,
        }
    }
    Ok(args)
}

fn bind_error(e: &dyn std::fmt::Display) -> SqliteError {
    SqliteError::MalformedRow(RowError::new(format!("cannot bind a parameter: {e}")))
}

/// JSON text of a value, as stored.
fn json_text(value: &Value) -> Result<String, SqliteError> {
    Ok(rows::value_text(value)?)
}

/// What the log's triggers do with a logged version in `slots`: the `changes.superseded`
/// column's value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SlotWrite {
    /// Upsert the slot's row (NULL; migration 0005).
    Upsert,
    /// Nothing: a later version of the same slot follows in this statement (1; migration
    /// 0005).
    Skip,
    /// Insert it as a new row, which fails if the slot has one (2; migration 0006).
    Insert,
}

impl SlotWrite {
    fn column(self) -> P<'static> {
        match self {
            SlotWrite::Upsert => P::Null,
            SlotWrite::Skip => P::Int(1),
            SlotWrite::Insert => P::Int(2),
        }
    }
}

/// For each version of `log` (in commit order): skipped if a later one of the same slot
/// follows, else inserted as a new row if `new_row` says the slot has none, else upserted.
fn slot_writes(log: &[(Slot, Record)], new_row: impl Fn(&Slot) -> bool) -> Vec<SlotWrite> {
    let mut later = std::collections::HashSet::with_capacity(log.len());
    let mut out = vec![SlotWrite::Skip; log.len()];
    for (i, (slot, _)) in log.iter().enumerate().rev() {
        if later.insert(slot) {
            out[i] = if new_row(slot) {
                SlotWrite::Insert
            } else {
                SlotWrite::Upsert
            };
        }
    }
    out
}

/// How the rows of a commit statement name their slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Form {
    /// Each row carries its slot's identity: kind, scope id, sub, namespace, key.
    Plain,
    /// Each row names its slot by position in an `ids` table in front (identity once per
    /// slot): for versions that repeat their slots (a hot counter).
    Slots,
    /// Each row names its scope and namespace by position in the `ids` table and carries its
    /// key: for slots that share them (the fields of one struct, new keys of one scope).
    Namespaces,
}

impl Form {
    /// The columns of a row of the statement's VALUES: position, the slot (or its position
    /// in `ids`), version, value, time, expiry, what the triggers do, how far back the
    /// slot's previous version is in the statement.
    fn columns(self) -> usize {
        match self {
            Form::Plain => 12,
            Form::Slots => 8,
            Form::Namespaces => 9,
        }
    }

    /// The columns of a row of the `ids` table: its position, then what it names.
    fn id_columns(self) -> usize {
        match self {
            Form::Plain => 0,
            Form::Slots => 6,
            Form::Namespaces => 5,
        }
    }

    /// The `ids` common table expression of `rows` rows.
    fn ids_cte(self, rows: usize) -> Option<String> {
        let columns = match self {
            Form::Plain => return None,
            Form::Slots => "i, kind, scope_id, scope_sub, namespace, key",
            Form::Namespaces => "i, kind, scope_id, scope_sub, namespace",
        };
        Some(format!(
            "ids({columns}) AS (VALUES {})",
            values(rows, self.id_columns())
        ))
    }

    /// The identity columns, the version's columns, and the join of the statement's SELECT.
    fn select(self) -> ([&'static str; 5], [&'static str; 6], &'static str) {
        match self {
            Form::Plain => (
                [
                    "n.column2",
                    "n.column3",
                    "n.column4",
                    "n.column5",
                    "n.column6",
                ],
                [
                    "n.column7",
                    "n.column8",
                    "n.column9",
                    "n.column10",
                    "n.column11",
                    "n.column12",
                ],
                "",
            ),
            Form::Slots => (
                [
                    "ids.kind",
                    "ids.scope_id",
                    "ids.scope_sub",
                    "ids.namespace",
                    "ids.key",
                ],
                [
                    "n.column3",
                    "n.column4",
                    "n.column5",
                    "n.column6",
                    "n.column7",
                    "n.column8",
                ],
                " JOIN ids ON ids.i = n.column2",
            ),
            Form::Namespaces => (
                [
                    "ids.kind",
                    "ids.scope_id",
                    "ids.scope_sub",
                    "ids.namespace",
                    "n.column3",
                ],
                [
                    "n.column4",
                    "n.column5",
                    "n.column6",
                    "n.column7",
                    "n.column8",
                    "n.column9",
                ],
                " JOIN ids ON ids.i = n.column2",
            ),
        }
    }
}

/// Inserts `rows` bound versions into the change log in their order, skipping padding; the
/// log's triggers (migrations 0004 to 0009) store each slot's last one in `slots`.
/// `guarded`: a `g(c)` common table expression in front counts stale assumptions (see
/// [`guarded_sql`]); if it is not 0 every `at` is NULL, which the NOT NULL constraint refuses,
/// aborting the statement. A `form` other than [`Form::Plain`] reads identities from an
/// `ids` common table expression in front.
///
/// Each version names the slot's previous one (migration 0009): by how many rows back it is
/// when the statement wrote it too (bound), else by the slot row's (or the purged slot's)
/// newest `seq`.
fn commit_text(rows: usize, guarded: bool, form: Form) -> String {
    let (identity, [version, value, at, expires, superseded, back], join) = form.select();
    let (at, from) = if guarded {
        (format!("CASE WHEN g.c = 0 THEN {at} END"), ", g")
    } else {
        (at.to_owned(), "")
    };
    let [kind, id, sub, namespace, key] = identity;
    let same = |t: &str| {
        format!(
            "{t}.kind = {kind} AND {t}.scope_id = {id} AND {t}.scope_sub = {sub} \
             AND {t}.namespace = {namespace} AND {t}.key = {key}"
        )
    };
    let (in_slots, in_purged) = (same("s"), same("h"));
    format!(
        "INSERT INTO changes (kind, scope_id, scope_sub, namespace, key, version, value, at, \
         expires_at, superseded, prev_back, prev_seq) \
         SELECT {kind}, {id}, {sub}, {namespace}, {key}, {version}, {value}, {at}, {expires}, \
         {superseded}, {back}, CASE WHEN {back} IS NULL THEN COALESCE(\
         (SELECT s.last_seq FROM slots s WHERE {in_slots}), \
         (SELECT h.last_seq FROM purged_heads h WHERE {in_purged})) END \
         FROM (VALUES {}) AS n{join}{from} WHERE n.column1 IS NOT NULL ORDER BY n.column1",
        values(rows, form.columns()),
    )
}

/// For each version of `log` (in commit order): how many versions back the previous one of
/// the same slot is, if `log` has one.
fn backs(log: &[(Slot, Record)]) -> Vec<Option<usize>> {
    let mut last = HashMap::with_capacity(log.len());
    log.iter()
        .enumerate()
        .map(|(i, (slot, _))| last.insert(slot, i).map(|before| i - before))
        .collect()
}

/// The rows of a commit's `ids` table and each version's row among them, in the form that
/// binds the fewest texts: [`Form::Slots`] when at least half of the versions repeat a slot
/// before them (a hot counter's group binds five identity texts instead of five per
/// version), else [`Form::Namespaces`] when at least half repeat a scope and namespace, else
/// [`Form::Plain`] (no table).
struct Shared<'a> {
    form: Form,
    ids: Vec<&'a Slot>,
    index: Vec<usize>,
}

impl<'a> Shared<'a> {
    /// Every row carrying its slot's identity.
    fn plain() -> Self {
        Shared {
            form: Form::Plain,
            ids: Vec::new(),
            index: Vec::new(),
        }
    }

    fn of(log: &'a [(Slot, Record)]) -> Self {
        if log.len() < 2 {
            return Self::plain(); // nothing can repeat
        }
        let slots = Self::by(log, Form::Slots, |s| (s.scope(), s.namespace(), s.key()));
        if slots.form != Form::Plain {
            return slots;
        }
        Self::by(log, Form::Namespaces, |s| (s.scope(), s.namespace(), ""))
    }

    /// `form` with one `ids` row per distinct `key`, if at least half the versions repeat
    /// one; else the plain form.
    fn by<K: std::hash::Hash + Eq>(
        log: &'a [(Slot, Record)],
        form: Form,
        key: impl Fn(&'a Slot) -> K,
    ) -> Self {
        let mut position = HashMap::with_capacity(log.len());
        let mut ids = Vec::new();
        let index = log
            .iter()
            .map(|(slot, _)| {
                *position.entry(key(slot)).or_insert_with(|| {
                    ids.push(slot);
                    ids.len() - 1
                })
            })
            .collect();
        if log.is_empty() || ids.len() * 2 > log.len() {
            return Self::plain();
        }
        Shared { form, ids, index }
    }

    /// The `ids` table's rows, in buckets (0: none).
    fn id_rows(&self) -> usize {
        if self.form == Form::Plain {
            0
        } else {
            bucket(self.ids.len())
        }
    }

    /// Binds the `ids` rows padded to `id_rows` (all NULL), then each version of `log` padded
    /// to `rows` (a NULL position is never inserted): position, its slot (or its row in
    /// `ids`, and its key), version, value, time, expiry and what the triggers do. Returns the
    /// JSON bytes of the values bound.
    fn bind(
        &self,
        params: &mut Vec<P<'a>>,
        log: &'a [(Slot, Record)],
        writes: &[SlotWrite],
        rows: usize,
        now: Timestamp,
    ) -> Result<usize, SqliteError> {
        let mut bytes = 0;
        for (i, slot) in self.ids.iter().enumerate() {
            params.push(P::Int(i as i64));
            let (kind, id, sub) = scope_columns(slot.scope());
            params.extend([kind, id, sub, slot.namespace()].map(P::Str));
            if self.form == Form::Slots {
                params.push(P::Str(slot.key()));
            }
        }
        let padding = self.id_rows().saturating_sub(self.ids.len()) * self.form.id_columns();
        params.extend(std::iter::repeat_with(|| P::Null).take(padding));
        let backs = backs(log);
        for (ord, (((slot, rec), write), back)) in log.iter().zip(writes).zip(backs).enumerate() {
            params.push(P::Int(ord as i64));
            match self.form {
                Form::Plain => push_slot(params, slot),
                Form::Slots => params.push(P::Int(self.index[ord] as i64)),
                Form::Namespaces => {
                    params.push(P::Int(self.index[ord] as i64));
                    params.push(P::Str(slot.key()));
                }
            }
            params.push(P::Int(to_i64(rec.version)?));
            let text = rec.value.as_ref().map(json_text).transpose()?;
            bytes += text.as_ref().map_or(0, String::len);
            params.push(P::Text(text));
            params.push(P::Int(now.as_millis()));
            params.push(P::int_or_null(rec.expires_at.map(Timestamp::as_millis)));
            params.push(write.column());
            params.push(P::int_or_null(back.map(|b| b as i64)));
        }
        let padding = rows.saturating_sub(log.len()) * self.form.columns();
        params.extend(std::iter::repeat_with(|| P::Null).take(padding));
        Ok(bytes)
    }
}

/// Writes a commit in the current transaction: every version in `log` (in commit order) to
/// the change log, each slot's last one to `slots`, in chunked, bucketed statements.
/// `commit`: `COMMIT` in the same call as the last chunk. Returns the calls made and the JSON
/// bytes written.
pub(crate) async fn write_commit(
    conn: &mut SqliteConnection,
    log: &[(Slot, Record)],
    now: Timestamp,
    commit: bool,
) -> Result<(usize, usize), SqliteError> {
    let mut bytes = 0;
    static PLAIN: [OnceLock<String>; BUCKETS] = [const { OnceLock::new() }; BUCKETS];
    static AND_COMMIT: [OnceLock<String>; BUCKETS] = [const { OnceLock::new() }; BUCKETS];
    let chunks = log.len().div_ceil(UPSERT_MAX);
    for (chunk_no, chunk) in log.chunks(UPSERT_MAX).enumerate() {
        let rows = bucket(chunk.len());
        let mut params = Vec::with_capacity(rows * Form::Plain.columns());
        let writes = slot_writes(chunk, |_| false);
        bytes += Shared::plain().bind(&mut params, chunk, &writes, rows, now)?;
        let args = bind_all(params)?;
        let sql = if commit && chunk_no + 1 == chunks {
            cached(&AND_COMMIT, rows, |rows| {
                format!("{}; COMMIT", commit_text(rows, false, Form::Plain))
            })
        } else {
            cached(&PLAIN, rows, |rows| commit_text(rows, false, Form::Plain))
        };
        sqlx::query_with(sql, args).execute(&mut *conn).await?;
    }
    Ok((chunks, bytes))
}

/// Tombstones every live slot of a scope, raising each version by one: logs the tombstones,
/// which the log's trigger stores in `slots` (migration 0004).
pub(crate) async fn clear(
    conn: &mut SqliteConnection,
    scope: &Scope,
    now: Timestamp,
) -> Result<u64, SqliteError> {
    let mut args = SqliteArguments::default();
    bind_scope(&mut args, scope)?;
    add(&mut args, now.as_millis())?;
    let done = sqlx::query_with(
        "INSERT INTO changes (kind, scope_id, scope_sub, namespace, key, version, value, at, \
                              prev_seq) \
         SELECT kind, scope_id, scope_sub, namespace, key, version + 1, NULL, ?4, last_seq \
         FROM slots \
         WHERE kind = ?1 AND scope_id = ?2 AND scope_sub = ?3 \
           AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > ?4) \
         ORDER BY namespace, key",
        args,
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Removes every row of a scope, raising its floor one above the highest version removed.
pub(crate) async fn purge_scope(
    conn: &mut SqliteConnection,
    scope: &Scope,
) -> Result<u64, SqliteError> {
    let mut args = SqliteArguments::default();
    bind_scope(&mut args, scope)?;
    sqlx::query_with(
        "INSERT INTO scope_floors (kind, scope_id, scope_sub, floor) \
         SELECT kind, scope_id, scope_sub, MAX(version) + 1 FROM slots \
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

/// Removes every expired row, raising each scope's floor one above the highest version
/// removed.
pub(crate) async fn purge_expired(
    conn: &mut SqliteConnection,
    now: Timestamp,
) -> Result<u64, SqliteError> {
    let mut args = SqliteArguments::default();
    add(&mut args, now.as_millis())?;
    sqlx::query_with(
        "INSERT INTO scope_floors (kind, scope_id, scope_sub, floor) \
         SELECT kind, scope_id, scope_sub, MAX(version) + 1 FROM slots \
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

/// The most touched (and changed) slots of one guarded commit (a group touching more takes the
/// read path).
pub(crate) const GUARDED_MAX: usize = 1024;

/// SQLite's limit on a statement's parameters (`SQLITE_MAX_VARIABLE_NUMBER`, 32766 unless
/// SQLite was built with another; the bundled one is not). The one-call commit's three size
/// buckets (8 parameters per checked slot, 4 per scope floor, 12 per logged version) can add
/// up to more: such a group takes the read path.
const PARAMS_MAX: usize = 32766;

/// The most change-log rows (versions) the one-call commit writes; a group that made more
/// takes the read path.
const GUARDED_LOG_MAX: usize = 2048;

/// The largest assumed value (serialized) the one-call commit compares in the database;
/// larger ones take the read path.
pub(crate) const GUARDED_VALUE_MAX: usize = 4096;

/// How SQLite refuses a stale one-call commit, by extended result code: [`commit_text`] makes
/// `at` NULL (SQLITE_CONSTRAINT_NOTNULL: migration 0004, and no column the commit binds is
/// ever NULL), or a version the commit stores as a new row meets a row
/// (SQLITE_CONSTRAINT_PRIMARYKEY or _UNIQUE: migration 0006). A refusal for any other reason
/// meets the same constraint again on the read path the group then takes, and is reported
/// there.
const STALE_CODES: [i32; 3] = [1299, 1555, 2067];

/// A scope's identity: kind, scope id, sub.
fn push_scope<'a>(params: &mut Vec<P<'a>>, scope: &'a Scope) {
    let (kind, id, sub) = scope_columns(scope);
    params.extend([kind, id, sub].map(P::Str));
}

/// The one-call commit: ONE statement, run in autocommit (its own transaction, which takes
/// the write lock when it starts). `g.c` counts the stale assumptions: `checked` slots whose
/// stored state (version and exact value text, or no row and the floor) differs from what the
/// committer assumed, and `floors` scopes whose floor differs. Every version goes to the log
/// (and each slot's last one from there, by the log's triggers, to `slots`), each with a NULL
/// time if that count is not 0, which aborts the statement, writing nothing. With nothing to
/// log it is the count alone.
///
/// A slot the committer assumes has no row and writes is not among the `checked`: its version
/// is stored as a new row, which fails on a row there (migration 0006), and its scope's floor
/// is among the `floors`. One lookup of the slot instead of two.
///
/// One statement, because sqlx's worker thread sends a message per statement of a string,
/// and each that finds the waiting thread asleep costs a thread wake-up.
///
/// `form`: how its log rows name their slots, with the rows of its `ids` table.
fn guarded_sql(
    checked: usize,
    floors: usize,
    logged: usize,
    (form, ids): (Form, usize),
) -> &'static str {
    type Shapes = HashMap<(usize, usize, usize, Form, usize), &'static str>;
    static CACHE: OnceLock<Mutex<Shapes>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry((checked, floors, logged, form, ids))
        .or_insert_with(|| {
            // Anonymous `?` parameters only, bound in textual order: SQLite resolves each
            // numbered `?NNN` by a linear scan, which makes binding quadratic in the parameter
            // count.
            let mut with = Vec::new();
            let mut stale = Vec::new();
            if checked > 0 {
                with.push(format!(
                    "t(kind, scope_id, scope_sub, namespace, key, ev, evalue, ef) AS (VALUES {})",
                    values(checked, 8)
                ));
                stale.push(
                    "(SELECT count(*) FROM t \
                 LEFT JOIN slots s ON s.kind = t.kind AND s.scope_id = t.scope_id \
                   AND s.scope_sub = t.scope_sub AND s.namespace = t.namespace \
                   AND s.key = t.key \
                 LEFT JOIN scope_floors f ON f.kind = t.kind AND f.scope_id = t.scope_id \
                   AND f.scope_sub = t.scope_sub \
                 WHERE NOT ((t.ev IS NULL AND s.version IS NULL \
                             AND COALESCE(f.floor, 0) = t.ef) \
                         OR (t.ev IS NOT NULL AND s.version IS t.ev \
                             AND s.value IS t.evalue)))",
                );
            }
            if floors > 0 {
                with.push(format!(
                    "u(kind, scope_id, scope_sub, ef) AS (VALUES {})",
                    values(floors, 4)
                ));
                stale.push(
                    "(SELECT count(*) FROM u \
                 LEFT JOIN scope_floors f ON f.kind = u.kind AND f.scope_id = u.scope_id \
                   AND f.scope_sub = u.scope_sub \
                 WHERE COALESCE(f.floor, 0) <> u.ef)",
                );
            }
            with.push(format!("g(c) AS (SELECT {})", stale.join(" + ")));
            if logged > 0 {
                with.extend(form.ids_cte(ids));
            }
            let with = format!("WITH {}", with.join(", "));
            let text = if logged == 0 {
                format!("{with} SELECT c FROM g")
            } else {
                format!("{with} {}", commit_text(logged, true, form))
            };
            Box::leak(text.into_boxed_str())
        })
}

/// The one-call commit of a group, ready to run on the direct connection
/// ([`Guarded::run_inline`]) or through sqlx ([`Guarded::run_sqlx`]).
pub(crate) struct Guarded<'a> {
    sql: &'static str,
    params: Vec<P<'a>>,
    /// Nothing to log: the statement is the count of stale assumptions alone.
    count_only: bool,
    /// The JSON bytes of the values it writes.
    pub(crate) bytes: usize,
}

impl<'a> Guarded<'a> {
    /// Builds the statement that commits `log` in one statement if every touched slot still
    /// holds exactly what `assumed` says (its row's version and value text, or no row and that
    /// floor), and otherwise writes nothing; `None` when an assumed value is too large to
    /// compare, or the group logs too many versions (take the read path).
    pub(crate) fn new(
        touched: &'a [Slot],
        assumed: &[Known],
        log: &'a [(Slot, Record)],
        now: Timestamp,
    ) -> Result<Option<Self>, SqliteError> {
        if log.len() > GUARDED_LOG_MAX || touched.is_empty() {
            return Ok(None);
        }
        let written: std::collections::HashSet<&Slot> = log.iter().map(|(s, _)| s).collect();
        // Slots assumed to have no row that this commit writes: only their scope's floor is
        // checked (once per scope and assumed floor); the new row checks the rest.
        let mut new_rows = std::collections::HashSet::new();
        let mut floors: Vec<(&'a Scope, u64)> = Vec::new();
        let mut floors_seen = std::collections::HashSet::new();
        let mut checked: Vec<(&'a Slot, Option<String>, &Known)> = Vec::new();
        for (slot, known @ (record, row)) in touched.iter().zip(assumed) {
            if !row && written.contains(slot) {
                new_rows.insert(slot);
                if floors_seen.insert((slot.scope(), record.version)) {
                    floors.push((slot.scope(), record.version));
                }
                continue;
            }
            let text = match (&record.value, row) {
                (Some(v), true) => Some(json_text(v)?),
                _ => None,
            };
            if text.as_ref().is_some_and(|t| t.len() > GUARDED_VALUE_MAX) {
                return Ok(None);
            }
            checked.push((slot, text, known));
        }
        let bucket_or_0 = |n: usize| if n == 0 { 0 } else { bucket(n) };
        let (t_rows, u_rows, l_rows) = (
            bucket_or_0(checked.len()),
            bucket_or_0(floors.len()),
            bucket_or_0(log.len()),
        );
        let shared = Shared::of(log);
        let i_rows = shared.id_rows();
        let log_params = i_rows * shared.form.id_columns() + l_rows * shared.form.columns();
        let count = t_rows * 8 + u_rows * 4 + log_params;
        if count > PARAMS_MAX {
            return Ok(None);
        }
        let mut params = Vec::with_capacity(count);
        for i in 0..t_rows {
            let (slot, text, (record, row)) = &checked[i.min(checked.len() - 1)];
            push_slot(&mut params, slot);
            params.push(P::int_or_null(
                row.then(|| to_i64(record.version)).transpose()?,
            ));
            params.push(P::Text(text.clone()));
            params.push(P::Int(to_i64(if *row { 0 } else { record.version })?));
        }
        for i in 0..u_rows {
            let (scope, floor) = floors[i.min(floors.len() - 1)];
            push_scope(&mut params, scope);
            params.push(P::Int(to_i64(floor)?));
        }
        let mut bytes = 0;
        if !log.is_empty() {
            let writes = slot_writes(log, |slot| new_rows.contains(slot));
            bytes = shared.bind(&mut params, log, &writes, l_rows, now)?;
        }
        Ok(Some(Guarded {
            sql: guarded_sql(t_rows, u_rows, l_rows, (shared.form, i_rows)),
            params,
            count_only: log.is_empty(),
            bytes,
        }))
    }

    /// Runs it through sqlx (on the connection's worker thread). Returns whether it wrote
    /// (with nothing to log: whether the assumptions held). Runs outside any transaction (the
    /// statement is its own).
    pub(crate) async fn run_sqlx(&self, conn: &mut SqliteConnection) -> Result<bool, SqliteError> {
        let args = bind_all(self.params.iter().map(P::borrowed).collect())?;
        if self.count_only {
            let stale: i64 = sqlx::query_scalar_with(self.sql, args)
                .fetch_one(&mut *conn)
                .await?;
            return Ok(stale == 0);
        }
        Self::wrote(
            sqlx::query_with(self.sql, args)
                .execute(&mut *conn)
                .await
                .map(drop),
        )
    }

    /// Runs it on the direct connection, on the calling thread, as
    /// [`Self::run_sqlx`] does; fails at once (SQLITE_BUSY) if another connection holds a
    /// lock.
    pub(crate) async fn run_inline(
        &self,
        conn: &mut crate::inline::WriteConn,
    ) -> Result<bool, SqliteError> {
        let ran = conn.run(self.sql, &self.params).await;
        if self.count_only {
            return Ok(ran? == Some(0));
        }
        Self::wrote(ran.map(drop))
    }

    /// Whether the statement wrote: a stale assumption aborts it, with `at` NULL or with a new
    /// row that meets a row (see [`STALE_CODES`]).
    fn wrote(ran: Result<(), sqlx::Error>) -> Result<bool, SqliteError> {
        match ran {
            Ok(()) => Ok(true),
            Err(sqlx::Error::Database(e))
                if e.code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| STALE_CODES.contains(&c)) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Deletes changes committed before `cutoff`, and raises the log's retention watermark
/// (migration 0007) to the newest one deleted, in one transaction. The caller rolls back on
/// an error.
pub(crate) async fn trim_changes(
    conn: &mut SqliteConnection,
    cutoff: Timestamp,
) -> Result<(), SqliteError> {
    // Everything before the oldest change at or after the cutoff (all of it if none is).
    const BELOW: &str = "COALESCE((SELECT seq FROM changes WHERE at >= ? ORDER BY seq LIMIT 1), \
                         (SELECT max(seq) + 1 FROM changes))";
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "BEGIN IMMEDIATE; \
             UPDATE changes_trimmed SET through = \
               max(through, COALESCE((SELECT max(seq) FROM changes WHERE seq < {BELOW}), 0)) \
             WHERE id = 0; \
             DELETE FROM purged_heads WHERE last_seq < {BELOW}; \
             DELETE FROM changes WHERE seq < {BELOW}; \
             COMMIT"
        )
    });
    let at = cutoff.as_millis();
    let args = bind_all(vec![P::Int(at), P::Int(at), P::Int(at)])?;
    sqlx::query_with(sql, args).execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use state_core::{Record, Scope, Slot, Timestamp};

    use super::{Form, Guarded, Known, PARAMS_MAX, Shared};

    fn record(version: u64, value: u64) -> Record {
        let mut r = Record::absent(version);
        r.value = Some(json!(value));
        r
    }

    /// A group whose versions repeat their slots, or their scope and namespace, binds each
    /// once and names it by position; every version still lands on its own slot, in commit
    /// order, and a stale group writes nothing.
    #[tokio::test]
    async fn a_group_naming_its_slots_by_position_writes_each_version_to_its_slot() {
        let scope = Scope::app("a").unwrap();
        let other = Scope::user("a", "u").unwrap();
        let at = |scope: &Scope, ns: &str, key: &str| Slot::new(scope.clone(), ns, key).unwrap();
        let (a, b) = (at(&scope, "ns", "a"), at(&scope, "ns", "b"));
        let repeated = vec![
            (a.clone(), record(1, 10)),
            (b.clone(), record(1, 20)),
            (b.clone(), record(2, 21)),
            (a.clone(), record(2, 11)),
            (a.clone(), record(3, 12)),
        ];
        let fields = vec![
            (at(&scope, "ns", "x"), record(1, 1)),
            (at(&other, "ns", "x"), record(1, 2)),
            (at(&scope, "ns", "y"), record(1, 3)),
            (at(&scope, "other", "x"), record(1, 4)),
            (at(&scope, "ns", "z"), record(1, 5)),
            (at(&other, "ns", "y"), record(1, 6)),
        ];
        for (log, form) in [(repeated, Form::Slots), (fields, Form::Namespaces)] {
            assert_eq!(Shared::of(&log).form, form);
            assert_commits_by_position(&log).await;
        }
    }

    async fn assert_commits_by_position(log: &[(Slot, Record)]) {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(crate::SqliteStore::open(&path).await.unwrap());
        let url = format!("sqlite://{}", path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let mut touched: Vec<Slot> = log.iter().map(|(s, _)| s.clone()).collect();
        touched.sort();
        touched.dedup();
        let assumed: Vec<Known> = vec![(Record::absent(0), false); touched.len()];
        let now = Timestamp::from_millis(5);
        let statement = Guarded::new(&touched, &assumed, log, now).unwrap().unwrap();
        assert!(statement.run_sqlx(&mut conn).await.unwrap(), "it wrote");
        type Row = (String, String, String, String, i64, String);
        let row = |(s, r): &(Slot, Record)| -> Row {
            let (kind, id, _) = state_core::backend::rows::scope_columns(s.scope());
            let value = r.value.as_ref().unwrap().to_string();
            let (kind, id) = (kind.to_owned(), id.to_owned());
            (
                kind,
                id,
                s.namespace().into(),
                s.key().into(),
                r.version as i64,
                value,
            )
        };
        let changes: Vec<Row> = sqlx::query_as(
            "SELECT kind, scope_id, namespace, key, version, value FROM changes ORDER BY seq",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let want: Vec<Row> = log.iter().map(row).collect();
        assert_eq!(changes, want, "every version, in commit order, on its slot");
        let slots: Vec<Row> = sqlx::query_as(
            "SELECT kind, scope_id, namespace, key, version, value FROM slots \
             ORDER BY kind, scope_id, namespace, key",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut last: Vec<Row> = Vec::new();
        for r in log.iter().map(row) {
            last.retain(|l| (&l.0, &l.1, &l.2, &l.3) != (&r.0, &r.1, &r.2, &r.3));
            last.push(r);
        }
        last.sort();
        assert_eq!(slots, last, "each slot holds its last version");
        let again = Guarded::new(&touched, &assumed, log, now).unwrap().unwrap();
        assert!(
            !again.run_sqlx(&mut conn).await.unwrap(),
            "a stale group writes nothing"
        );
    }

    /// The one-call commit's three size buckets can add up to more parameters than SQLite
    /// takes: such a group must take the read path, not fail.
    #[test]
    fn a_group_over_sqlites_parameter_limit_takes_the_read_path() {
        // Every slot in a scope of its own: nothing repeats, so the rows carry identities.
        let cached: Vec<Slot> = (0..600)
            .map(|i| Slot::new(Scope::app(format!("c{i}")).unwrap(), "ns", "k").unwrap())
            .collect();
        let fresh: Vec<Slot> = (0..300)
            .map(|i| Slot::new(Scope::user("a", format!("u{i}")).unwrap(), "ns", "k").unwrap())
            .collect();
        let touched: Vec<Slot> = cached.iter().chain(&fresh).cloned().collect();
        let mut record = Record::absent(1);
        record.value = Some(json!(1));
        let assumed: Vec<Known> = cached
            .iter()
            .map(|_| (record.clone(), true))
            .chain(fresh.iter().map(|_| (Record::absent(0), false)))
            .collect();
        let version = |v: u64| {
            let mut r = Record::absent(v);
            r.value = Some(json!(v));
            r
        };
        let log_of = |versions: usize| -> Vec<(Slot, Record)> {
            let mut log: Vec<(Slot, Record)> =
                touched.iter().map(|s| (s.clone(), version(2))).collect();
            log.extend(
                cached
                    .iter()
                    .take(versions - touched.len())
                    .map(|s| (s.clone(), version(3))),
            );
            log
        };
        let now = Timestamp::from_millis(0);
        // 600 checked slots (1024 rows × 8), 300 scope floors (512 × 4), 1025 versions
        // (2048 × 12): 34 816 parameters.
        let over = log_of(1025);
        let params = 1024 * 8 + 512 * 4 + 2048 * 12;
        assert!(params > PARAMS_MAX);
        assert!(
            Guarded::new(&touched, &assumed, &over, now)
                .unwrap()
                .is_none()
        );
        // 1024 versions fit (1024 × 12).
        let within = log_of(1024);
        let statement = Guarded::new(&touched, &assumed, &within, now)
            .unwrap()
            .expect("within the limit: one call");
        assert_eq!(statement.params.len(), 1024 * 8 + 512 * 4 + 1024 * 12);
    }
}
