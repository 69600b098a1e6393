//! `statectl`: inspect and edit state from the command line.
//!
//! Every write goes through the store with a version check: `set` and `delete` are
//! compare-and-swap writes (at `--if-version N`, or at the version just read), `update` sends
//! the library's untyped ops, which the store applies atomically. Errors are one line on
//! stderr and a distinct exit code per class.

use std::io::{BufRead, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use state_core::{
    Change, ChangeFilter, Engine, EngineConfig, Error, Op, Record, Scope, ScopeKind, Slot, SlotKey,
    Store, Write,
};
use state_postgres::{PgError, PgStore};
use state_sqlite::{SqliteError, SqliteStore};

/// Inspect and edit typed state (scopes, keys, values) in a state store.
///
/// SCOPE is `kind:id` (`execution:run-1`, `workflow:research`, `app:shop`, `group:flags`) or
/// `kind:first:second` for `object:service:key` and `user:app:user`; for ids containing `:`
/// give a JSON array: `'["user","a:b","c"]'`.
#[derive(Parser, Debug)]
#[command(name = "statectl", version)]
struct Cli {
    /// The database: a SQLite file path (or `sqlite://path`), or a PostgreSQL URL
    /// (`postgres://user:password@host:port/database`; the store's tables are in schema
    /// `typed_state`, or the one named by `?state_schema=NAME` at the end of the URL).
    #[arg(long, env = "STATECTL_DB", global = true)]
    db: Option<String>,
    /// Print JSON (one document, or JSON lines for listings) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List scopes holding live state.
    Scopes {
        /// Only scopes of this kind.
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        /// Include scopes holding only tombstones or expired slots.
        #[arg(long)]
        all: bool,
    },
    /// List the keys of a scope.
    Keys {
        /// The scope.
        scope: String,
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one slot: value, version, expiry.
    Get(SlotArgs),
    /// Store a JSON value (a compare-and-swap at `--if-version`, or at the version read).
    Set {
        #[command(flatten)]
        slot: SlotArgs,
        /// The value, as JSON.
        value: String,
        /// Write only if the slot is at this version.
        #[arg(long)]
        if_version: Option<u64>,
    },
    /// Apply ops atomically, e.g. `--op '{"path":[],"op":"increment","by":1,"kind":"u32"}'`.
    Update {
        #[command(flatten)]
        slot: SlotArgs,
        /// An op as JSON (repeatable; applied in order, all or nothing).
        #[arg(long = "op", required = true)]
        ops: Vec<String>,
    },
    /// Delete one slot (a compare-and-swap at `--if-version`, or at the version read; a slot
    /// holding no value is "not found", exit 3, unless `--if-version` is given).
    Delete {
        #[command(flatten)]
        slot: SlotArgs,
        /// Delete only if the slot is at this version.
        #[arg(long)]
        if_version: Option<u64>,
    },
    /// Delete every live slot of a scope.
    Clear {
        /// The scope.
        scope: String,
    },
    /// Physically remove expired slots, or an execution's state (version floors are kept).
    Purge {
        /// Remove every expired slot.
        #[arg(
            long,
            conflicts_with = "execution",
            required_unless_present = "execution"
        )]
        expired: bool,
        /// Remove this execution's state.
        #[arg(long)]
        execution: Option<String>,
    },
    /// Write every stored slot (tombstones included) as JSON lines to stdout. Consumers'
    /// cursors (`app:_consumers`) are positions in this store's change log: left out unless
    /// asked for with `--scope`.
    Export {
        /// Only this scope.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Restore JSON lines written by `export` (all or nothing; never lowers a version).
    Import {
        /// The file to read (`-`: stdin).
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Create the database file if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Follow the change log of a scope, printing every new version with its sequence number
    /// (resume with `--from` the last one printed).
    Watch {
        /// The scope.
        scope: String,
        /// Start after this sequence number (default: the newest change now; 0: the whole log,
        /// which fails, naming where to resume, once the retention removed any of it).
        #[arg(long)]
        from: Option<u64>,
        /// Poll interval in milliseconds (at least 1).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
        interval_ms: u64,
        /// Stop after this many changes (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// Show a slot's recent versions from the change log, newest first.
    History {
        #[command(flatten)]
        slot: SlotArgs,
        /// At most this many versions.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only changes older than this sequence number (to page back).
        #[arg(long)]
        before: Option<u64>,
    },
}

#[derive(Args, Debug)]
struct SlotArgs {
    /// The scope.
    scope: String,
    /// The namespace (a state struct's name).
    namespace: String,
    /// The key (a field's name, or a collection entry's key).
    key: String,
}

#[derive(Args, Debug)]
struct PageArgs {
    /// At most this many items.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Continue after this cursor (the `next` of the previous page).
    #[arg(long)]
    after: Option<String>,
}

/// The classes of failure, each with its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Usage = 2,
    NotFound = 3,
    Conflict = 4,
    Invalid = 5,
    Store = 6,
}

struct Failure {
    class: Class,
    message: String,
}

impl Failure {
    fn new(class: Class, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let class = match &e {
            Error::VersionMismatch { .. } | Error::Conflict { .. } => Class::Conflict,
            Error::ChangesTrimmed { .. } => Class::NotFound,
            Error::Store { source, .. } => {
                match (
                    source.downcast_ref::<SqliteError>(),
                    source.downcast_ref::<PgError>(),
                ) {
                    (Some(SqliteError::NotADatabase { .. }), _) => Class::Invalid,
                    (_, Some(PgError::InvalidUrl { .. } | PgError::InvalidSchemaName { .. })) => {
                        Class::Invalid
                    }
                    (_, Some(PgError::SchemaMissing { .. })) => Class::NotFound,
                    _ => Class::Store,
                }
            }
            _ => Class::Invalid,
        };
        Failure::new(class, e.to_string().replace('\n', " "))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("statectl: {}", usage_error(&e.to_string()));
            return ExitCode::from(Class::Usage as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("statectl: cannot start: {e}");
            return ExitCode::from(Class::Store as u8);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("statectl: {}", f.message);
            ExitCode::from(f.class as u8)
        }
    }
}

/// Parses a SCOPE argument.
fn parse_scope(text: &str) -> Result<Scope, Failure> {
    if text.trim_start().starts_with('[') {
        let parts: Vec<String> = serde_json::from_str(text).map_err(|e| {
            Failure::new(
                Class::Invalid,
                format!("scope {text:?} is not a JSON array of strings: {e}"),
            )
        })?;
        let (kind, rest) = parts
            .split_first()
            .ok_or_else(|| Failure::new(Class::Invalid, "an empty scope array"))?;
        let kind: ScopeKind = kind.parse()?;
        return match rest {
            [id] => Ok(Scope::new(kind, id.clone(), None::<String>)?),
            [id, sub] => Ok(Scope::new(kind, id.clone(), Some(sub.clone()))?),
            _ => Err(Failure::new(
                Class::Invalid,
                format!("scope {text:?} needs one or two id parts"),
            )),
        };
    }
    let (kind, rest) = text.split_once(':').ok_or_else(|| {
        Failure::new(
            Class::Invalid,
            format!("scope {text:?} is not `kind:id` (e.g. `app:shop`)"),
        )
    })?;
    let kind: ScopeKind = kind.parse()?;
    if kind.has_two_parts() {
        let (id, sub) = rest.split_once(':').ok_or_else(|| {
            Failure::new(
                Class::Invalid,
                format!("a `{kind}` scope is `{kind}:first:second`, not {text:?}"),
            )
        })?;
        Ok(Scope::new(kind, id, Some(sub))?)
    } else {
        Ok(Scope::new(kind, rest, None::<String>)?)
    }
}

fn scope_text(scope: &Scope) -> String {
    match scope.parts() {
        (id, Some(sub)) if !id.contains(':') => format!("{}:{id}:{sub}", scope.kind()),
        (id, Some(sub)) => json!([scope.kind().as_str(), id, sub]).to_string(),
        (id, None) => format!("{}:{id}", scope.kind()),
    }
}

fn parse_json(what: &str, text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure::new(Class::Invalid, format!("{what} is not valid JSON: {e}")))
}

async fn open(db: Option<&str>, create: bool) -> Result<std::sync::Arc<dyn Store>, Failure> {
    let db = db.ok_or_else(|| {
        Failure::new(
            Class::Usage,
            "no database: pass --db PATH or set STATECTL_DB",
        )
    })?;
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        // `state_schema` is ours, not a server parameter: take it off the URL.
        let (url, schema) = match db.rsplit_once("state_schema=") {
            Some((head, schema)) => (head.trim_end_matches(['?', '&']), schema),
            None => (db, state_postgres::DEFAULT_SCHEMA),
        };
        // Like a missing file: a missing schema is created only by `import --create`.
        let options = state_postgres::PgOptions::new(url)
            .schema(schema)
            .create_if_missing(create)
            .retry_for(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(5));
        return Ok(std::sync::Arc::new(PgStore::open_with(options).await?));
    }
    let path = PathBuf::from(db.strip_prefix("sqlite://").unwrap_or(db));
    if !create && !path.exists() {
        return Err(Failure::new(
            Class::NotFound,
            format!("no database at {}", path.display()),
        ));
    }
    Ok(std::sync::Arc::new(SqliteStore::open(&path).await?))
}

/// One line of `export`.
#[derive(Serialize, Deserialize)]
struct Line {
    slot: Slot,
    record: Record,
}

fn print_json(v: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    );
}

/// clap's error as one line: what is wrong and what it names (the arguments missing, say),
/// without the usage block and the `--help` tip.
fn usage_error(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:") && !l.starts_with("For more"))
        .collect();
    let line = parts.join(" ");
    let line = line.trim_start_matches("error: ");
    if line.is_empty() {
        "invalid usage; see --help".to_owned()
    } else {
        line.to_owned()
    }
}

/// Reads and checks every line of an `import` file, before any database is opened: a bad or
/// missing file creates nothing.
fn read_import(file: &std::path::Path) -> Result<Vec<(Slot, Record)>, Failure> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).map_err(|e| {
            Failure::new(
                Class::NotFound,
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut records = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line =
            line.map_err(|e| Failure::new(Class::Invalid, format!("line {}: {e}", n + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| {
            Failure::new(
                Class::Invalid,
                format!("line {} is not an export line: {e}", n + 1),
            )
        })?;
        records.push((l.slot, l.record));
    }
    Ok(records)
}

/// The scope of consumers' cursors: positions in this store's change log, meaningless in
/// another store's, so `export` of every scope leaves it out.
fn is_cursor_scope(scope: &Scope) -> bool {
    scope.kind() == ScopeKind::App && scope.parts().0 == "_consumers"
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let create = matches!(cli.command, Command::Import { create: true, .. });
    let mut import = match &cli.command {
        Command::Import { file, .. } => Some(read_import(file)?),
        _ => None,
    };
    let store = open(cli.db.as_deref(), create).await?;
    let engine = Engine::with_config(store.clone(), Default::default());
    let slot_of = |a: &SlotArgs| -> Result<Slot, Failure> {
        Ok(Slot::new(
            parse_scope(&a.scope)?,
            a.namespace.clone(),
            a.key.clone(),
        )?)
    };
    match cli.command {
        Command::Scopes { kind, page, all } => {
            let kind = kind.map(|k| k.parse::<ScopeKind>()).transpose()?;
            let after = page.after.as_deref().map(parse_scope).transpose()?;
            let p = if all {
                store
                    .list_stored_scopes(kind, after.as_ref(), page.limit)
                    .await?
            } else {
                store.list_scopes(kind, after.as_ref(), page.limit).await?
            };
            if cli.json {
                print_json(&json!({"items": p.items, "next": p.next.as_ref().map(scope_text)}));
            } else {
                println!("{:<10} {:<30} SECOND", "KIND", "ID");
                for s in &p.items {
                    let (id, sub) = s.parts();
                    println!("{:<10} {:<30} {}", s.kind().as_str(), id, sub.unwrap_or(""));
                }
                if let Some(n) = &p.next {
                    println!("next: --after '{}'", scope_text(n));
                }
            }
        }
        Command::Keys {
            scope,
            namespace,
            page,
        } => {
            let scope = parse_scope(&scope)?;
            let after = page
                .after
                .as_deref()
                .map(|a| {
                    serde_json::from_str::<SlotKey>(a).map_err(|e| {
                        Failure::new(
                            Class::Invalid,
                            format!("--after takes the `next` cursor printed before: {e}"),
                        )
                    })
                })
                .transpose()?;
            let p = store
                .list_keys(&scope, namespace.as_deref(), after.as_ref(), page.limit)
                .await?;
            let next = p
                .next
                .as_ref()
                .map(|n| serde_json::to_string(n).unwrap_or_default());
            if cli.json {
                print_json(&json!({"items": p.items, "next": next}));
            } else {
                println!("{:<24} KEY", "NAMESPACE");
                for k in &p.items {
                    println!("{:<24} {}", k.namespace, k.key);
                }
                if let Some(n) = next {
                    println!("next: --after '{n}'");
                }
            }
        }
        Command::Get(a) => {
            let slot = slot_of(&a)?;
            let r = store.load(&slot).await?;
            if r.version == 0 {
                return Err(Failure::new(
                    Class::NotFound,
                    format!("slot {slot} was never written"),
                ));
            }
            if cli.json {
                print_json(
                    &json!({"value": r.value, "version": r.version, "expires_at": r.expires_at}),
                );
            } else {
                let value = r
                    .value
                    .as_ref()
                    .map_or("(deleted)".to_owned(), |v| v.to_string());
                println!("value:   {value}");
                println!("version: {}", r.version);
                match r.expires_at {
                    Some(t) => println!("expires: {} ms since the epoch", t.as_millis()),
                    None => println!("expires: never"),
                }
            }
        }
        Command::Set {
            slot,
            value,
            if_version,
        } => {
            let s = slot_of(&slot)?;
            let value = parse_json("the value", &value)?;
            let expected = match if_version {
                Some(v) => v,
                None => store.load(&s).await?.version,
            };
            let out = engine
                .commit(vec![Write::cas(s, expected, Some(value))])
                .await?;
            report_version(cli.json, out.first().map_or(0, |o| o.version), None);
        }
        Command::Update { slot, ops } => {
            let s = slot_of(&slot)?;
            let ops: Vec<Op> = ops
                .iter()
                .map(|o| {
                    serde_json::from_str(o).map_err(|e| {
                        Failure::new(Class::Invalid, format!("op {o:?} is not a valid op: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?;
            let out = engine.commit(vec![Write::apply(s, ops)]).await?;
            let o = out
                .first()
                .ok_or_else(|| Failure::new(Class::Store, "the store returned no outcome"))?;
            report_version(cli.json, o.version, Some(&o.outputs));
        }
        Command::Delete { slot, if_version } => {
            let s = slot_of(&slot)?;
            let expected = match if_version {
                Some(v) => v,
                None => {
                    // Nothing to delete: say so rather than write a tombstone (a typo would
                    // create a slot, and every repeat raise its version).
                    let r = store.load(&s).await?;
                    if r.value.is_none() {
                        return Err(Failure::new(
                            Class::NotFound,
                            format!("nothing to delete: {s} holds no value"),
                        ));
                    }
                    r.version
                }
            };
            let out = engine.commit(vec![Write::cas(s, expected, None)]).await?;
            report_version(cli.json, out.first().map_or(0, |o| o.version), None);
        }
        Command::Clear { scope } => {
            let n = store.clear(&parse_scope(&scope)?).await?;
            report_count(cli.json, "cleared", n);
        }
        Command::Purge { expired, execution } => {
            let n = match execution {
                Some(id) => engine.purge_execution(&id).await?,
                None if expired => store.purge_expired().await?,
                None => {
                    return Err(Failure::new(
                        Class::Usage,
                        "purge needs --expired or --execution ID",
                    ));
                }
            };
            report_count(cli.json, "purged", n);
        }
        Command::Export { scope } => {
            let scopes = match scope {
                Some(s) => vec![parse_scope(&s)?],
                None => {
                    let mut all = Vec::new();
                    let mut after = None;
                    loop {
                        let p = store.list_stored_scopes(None, after.as_ref(), 1000).await?;
                        all.extend(p.items.into_iter().filter(|s| !is_cursor_scope(s)));
                        match p.next {
                            Some(n) => after = Some(n),
                            None => break,
                        }
                    }
                    all
                }
            };
            let mut out = std::io::stdout().lock();
            for scope in scopes {
                for (key, mut record) in store.load_scope(&scope, None).await? {
                    if record.value.is_none() {
                        record.expires_at = None; // an expired slot exports as the tombstone it reads as
                    }
                    let slot = Slot::new(scope.clone(), key.namespace, key.key)?;
                    let line = serde_json::to_string(&Line { slot, record })
                        .map_err(|e| Failure::new(Class::Store, format!("cannot encode: {e}")))?;
                    writeln!(out, "{line}")
                        .map_err(|e| Failure::new(Class::Store, format!("cannot write: {e}")))?;
                }
            }
        }
        Command::Import { .. } => {
            let records = import.take().unwrap_or_default();
            let n = store.restore(state_core::Restore::new(records)).await?;
            report_count(cli.json, "imported", n);
        }
        Command::Watch {
            scope,
            from,
            interval_ms,
            count,
        } => {
            let scope = parse_scope(&scope)?;
            let after = match from {
                Some(seq) => seq,
                None => store.last_change().await?,
            };
            if !cli.json {
                println!("watching {} after change {after}", scope_text(&scope));
            }
            // The engine's change stream: polls every `interval_ms`, and is woken at once by
            // PostgreSQL's NOTIFY.
            let engine = Engine::with_config(
                store.clone(),
                EngineConfig::default().change_poll(Duration::from_millis(interval_ms)),
            );
            let mut feed = engine.changes(after, ChangeFilter::scope(scope));
            let mut changes = 0;
            while let Some(c) = feed.next().await {
                print_change(cli.json, &c?, true);
                changes += 1;
                if count.is_some_and(|n| changes >= n) {
                    return Ok(());
                }
            }
        }
        Command::History {
            slot,
            limit,
            before,
        } => {
            let slot = slot_of(&slot)?;
            state_core::check_page_limit(limit)?;
            let history = store.slot_history(&slot, before, limit).await?;
            if history.is_empty() && before.is_none() {
                return Err(Failure::new(
                    Class::NotFound,
                    format!("the change log holds no version of slot {slot}"),
                ));
            }
            for c in &history {
                print_change(cli.json, c, false);
            }
        }
    }
    Ok(())
}

/// Prints one change: a JSON line, or `seq <n> [<namespace> <key>] v<version> <value> at <ms>`.
fn print_change(json: bool, c: &Change, with_slot: bool) {
    if json {
        print_json(&json!({
            "seq": c.seq,
            "namespace": c.slot.namespace(),
            "key": c.slot.key(),
            "version": c.version,
            "value": c.value,
            "at": c.at.as_millis(),
        }));
    } else {
        let value = c
            .value
            .as_ref()
            .map_or("(deleted)".to_owned(), |v| v.to_string());
        let slot = if with_slot {
            format!(" {} {}", c.slot.namespace(), c.slot.key())
        } else {
            String::new()
        };
        println!(
            "seq {}{slot} v{} {value} at {}",
            c.seq,
            c.version,
            c.at.as_millis()
        );
    }
    let _ = std::io::stdout().flush();
}

fn report_version(json: bool, version: u64, outputs: Option<&Vec<Option<Value>>>) {
    if json {
        print_json(&json!({"version": version, "outputs": outputs}));
    } else {
        println!("version {version}");
        if let Some(outputs) = outputs.filter(|o| o.iter().any(Option::is_some)) {
            for o in outputs.iter().flatten() {
                println!("output: {o}");
            }
        }
    }
}

fn report_count(json: bool, what: &str, n: u64) {
    if json {
        print_json(&json!({ what: n }));
    } else {
        println!("{what} {n}");
    }
}
