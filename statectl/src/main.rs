//! `statectl`: inspect and edit state from the command line.
//!
//! Every write goes through the store with a version check: `set` and `delete` are
//! compare-and-swap writes (at `--if-version N`, or at the version just read), `update` sends
//! the library's untyped ops, which the store applies atomically. Commands that only read
//! open a SQLite file read-only. Errors are one line on stderr and a distinct exit code per
//! class; output goes through [`out::Out`], so a closed or full stdout is an error too.

mod db;
mod fail;
mod input;
mod out;
mod reads;
mod transfer;
mod writes;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::db::Access;
use crate::fail::{Class, Failure};
use crate::out::Out;

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
        /// The value, as JSON (`-`: read it from stdin; a negative number is a value).
        #[arg(
            allow_hyphen_values = true,
            required_unless_present = "file",
            conflicts_with = "file"
        )]
        value: Option<String>,
        /// Read the value from this file (for values beyond the OS's argument limit).
        #[arg(long)]
        file: Option<PathBuf>,
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
    /// asked for with `--scope`. An unreadable row is named on stderr (slot, version, reason,
    /// stored text) and the others are still written; the exit code is then 6.
    Export {
        /// Only this scope.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Restore JSON lines written by `export` (all or nothing; never lowers a version; an
    /// unknown field, or a value past a write's limits, is an error naming the line).
    Import {
        /// The file to read (`-`: stdin).
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Create the database file if it does not exist.
        #[arg(long)]
        create: bool,
        /// The largest serialized value a record may hold (a write's limit).
        #[arg(long, default_value_t = state_core::DEFAULT_MAX_VALUE_BYTES)]
        max_value_bytes: usize,
    },
    /// Follow the change log of a scope, printing every new version with its sequence number
    /// (resume with `--from` the last one printed).
    Watch {
        /// The scope.
        scope: String,
        /// Start after this sequence number (default: the newest change now; 0: the whole log,
        /// which fails, naming where to resume, once the retention removed any of it; past
        /// the newest change: an error).
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
            let usage = Failure::new(Class::Usage, usage_error(&e.to_string()));
            return fail(&usage);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&Failure::new(Class::Store, format!("cannot start: {e}"))),
    };
    if let Some(db) = cli.db.as_deref() {
        fail::hide_secrets_of(db);
    }
    let mut out = Out::new(cli.json);
    match runtime
        .block_on(run(cli, &mut out))
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => fail(&f),
    }
}

/// Says why on stderr (if stderr itself is gone there is nowhere to say it) and exits with the
/// failure's code.
fn fail(f: &Failure) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "statectl: {}", f.line());
    ExitCode::from(f.class as u8)
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

/// What the command needs of the store.
fn access(command: &Command) -> Access {
    match command {
        Command::Scopes { .. }
        | Command::Keys { .. }
        | Command::Get(_)
        | Command::Export { .. }
        | Command::Watch { .. }
        | Command::History { .. } => Access::Read,
        Command::Import { create: true, .. } => Access::Create,
        _ => Access::Write,
    }
}

async fn run(cli: Cli, out: &mut Out) -> Result<(), Failure> {
    // An import file is read and held to every limit a store checks before any database is
    // opened: a refused file creates nothing (and no store is removed again, which could
    // race another process that opened it meanwhile).
    let import = match &cli.command {
        Command::Import {
            file,
            max_value_bytes,
            ..
        } => transfer::checked_import(transfer::read_import(file)?, *max_value_bytes)?,
        _ => Vec::new(),
    };
    let store = db::open(cli.db.as_deref(), access(&cli.command)).await?;
    dispatch(cli.command, store, import, out).await
}

async fn dispatch(
    command: Command,
    store: std::sync::Arc<dyn state_core::Store>,
    import: Vec<(state_core::Slot, state_core::Record)>,
    out: &mut Out,
) -> Result<(), Failure> {
    match command {
        Command::Scopes { kind, page, all } => reads::scopes(&store, kind, page, all, out).await,
        Command::Keys {
            scope,
            namespace,
            page,
        } => reads::keys(&store, &scope, namespace, page, out).await,
        Command::Get(a) => reads::get(&store, &a, out).await,
        Command::History {
            slot,
            limit,
            before,
        } => reads::history(&store, &slot, limit, before, out).await,
        Command::Watch {
            scope,
            from,
            interval_ms,
            count,
        } => reads::watch(&store, &scope, from, interval_ms, count, out).await,
        Command::Export { scope } => {
            let scope = scope.as_deref().map(input::parse_scope).transpose()?;
            transfer::export(store.as_ref(), scope, out).await
        }
        Command::Import {
            max_value_bytes, ..
        } => {
            let n = transfer::import(store.as_ref(), import, max_value_bytes).await?;
            out.committed(format!("imported {n}"));
            writes::report_count(out, "imported", n)
        }
        Command::Set {
            slot,
            value,
            file,
            if_version,
        } => {
            let text = input::value_text(value.as_deref(), file.as_deref())?;
            writes::set(&store, &slot, &text, if_version, out).await
        }
        Command::Update { slot, ops } => writes::update(&store, &slot, &ops, out).await,
        Command::Delete { slot, if_version } => {
            writes::delete(&store, &slot, if_version, out).await
        }
        Command::Clear { scope } => writes::clear(&store, &scope, out).await,
        Command::Purge { expired, execution } => {
            writes::purge(&store, expired, execution, out).await
        }
    }
}
