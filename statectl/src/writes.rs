//! The commands that write: `set`, `update`, `delete`, `clear`, `purge`. Each notes what
//! committed before it reports, so a failure to print says the write is in.

use std::sync::Arc;

use serde_json::{Value, json};
use state_core::{Engine, Op, Store, Write};

use crate::SlotArgs;
use crate::fail::{Class, Failure};
use crate::input;
use crate::out::{Out, json_text};
use crate::reads::slot_of;

fn engine(store: &Arc<dyn Store>) -> Engine {
    Engine::with_config(store.clone(), Default::default())
}

pub async fn set(
    store: &Arc<dyn Store>,
    slot: &SlotArgs,
    text: &str,
    if_version: Option<u64>,
    out: &mut Out,
) -> Result<(), Failure> {
    let s = slot_of(slot)?;
    let value = input::value_for(&s, text)?;
    let expected = match if_version {
        Some(v) => v,
        None => store.load(&s).await?.version,
    };
    let done = engine(store)
        .commit(vec![Write::cas(s, expected, Some(value))])
        .await?;
    report_version(out, done.first().map_or(0, |o| o.version), None)
}

pub async fn update(
    store: &Arc<dyn Store>,
    slot: &SlotArgs,
    ops: &[String],
    out: &mut Out,
) -> Result<(), Failure> {
    let s = slot_of(slot)?;
    let ops: Vec<Op> = ops
        .iter()
        .enumerate()
        .map(|(i, o)| input::op(i + 1, o))
        .collect::<Result<_, _>>()?;
    let done = engine(store).commit(vec![Write::apply(s, ops)]).await?;
    let o = done
        .first()
        .ok_or_else(|| Failure::new(Class::Store, "the store returned no outcome"))?;
    report_version(out, o.version, Some(&o.outputs))
}

pub async fn delete(
    store: &Arc<dyn Store>,
    slot: &SlotArgs,
    if_version: Option<u64>,
    out: &mut Out,
) -> Result<(), Failure> {
    let s = slot_of(slot)?;
    let expected = match if_version {
        Some(v) => v,
        None => {
            // Nothing to delete: say so rather than write a tombstone (a typo would create a
            // slot, and every repeat raise its version).
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
    let done = engine(store)
        .commit(vec![Write::cas(s, expected, None)])
        .await?;
    report_version(out, done.first().map_or(0, |o| o.version), None)
}

pub async fn clear(store: &Arc<dyn Store>, scope: &str, out: &mut Out) -> Result<(), Failure> {
    let n = store.clear(&input::parse_scope(scope)?).await?;
    out.committed(format!("cleared {n}"));
    report_count(out, "cleared", n)
}

pub async fn purge(
    store: &Arc<dyn Store>,
    expired: bool,
    execution: Option<String>,
    out: &mut Out,
) -> Result<(), Failure> {
    let n = match execution {
        Some(id) => engine(store).purge_execution(&id).await?,
        None if expired => store.purge_expired().await?,
        None => {
            return Err(Failure::new(
                Class::Usage,
                "purge needs --expired or --execution ID",
            ));
        }
    };
    out.committed(format!("purged {n}"));
    report_count(out, "purged", n)
}

fn report_version(
    out: &mut Out,
    version: u64,
    outputs: Option<&Vec<Option<Value>>>,
) -> Result<(), Failure> {
    out.committed(format!("version {version}"));
    if out.json {
        return out.json_line(&json!({"version": version, "outputs": outputs}));
    }
    out.line(format_args!("version {version}"))?;
    for o in outputs.into_iter().flatten().flatten() {
        out.line(format_args!("output: {}", json_text(o)?))?;
    }
    Ok(())
}

/// Reports how many slots a committed command changed.
pub fn report_count(out: &mut Out, what: &str, n: u64) -> Result<(), Failure> {
    if out.json {
        return out.json_line(&json!({ what: n }));
    }
    out.line(format_args!("{what} {n}"))
}
