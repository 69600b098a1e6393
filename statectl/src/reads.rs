//! The commands that only read: `scopes`, `keys`, `get`, `history`, `watch`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use state_core::{Change, ChangeFilter, Engine, EngineConfig, ScopeKind, SlotKey, Store};

use crate::fail::{Class, Failure};
use crate::input::{parse_scope, scope_text};
use crate::out::{Out, cell, json_text, shell_word};
use crate::{PageArgs, SlotArgs};

/// The slot SLOT's arguments name.
pub fn slot_of(a: &SlotArgs) -> Result<state_core::Slot, Failure> {
    Ok(state_core::Slot::new(
        parse_scope(&a.scope)?,
        a.namespace.clone(),
        a.key.clone(),
    )?)
}

pub async fn scopes(
    store: &Arc<dyn Store>,
    kind: Option<String>,
    page: PageArgs,
    all: bool,
    out: &mut Out,
) -> Result<(), Failure> {
    let kind = kind.map(|k| k.parse::<ScopeKind>()).transpose()?;
    let after = page.after.as_deref().map(parse_scope).transpose()?;
    let p = if all {
        store
            .list_stored_scopes(kind, after.as_ref(), page.limit)
            .await?
    } else {
        store.list_scopes(kind, after.as_ref(), page.limit).await?
    };
    if out.json {
        return out.json_line(&json!({"items": p.items, "next": p.next.as_ref().map(scope_text)}));
    }
    out.line(format_args!("{:<10} {:<30} SECOND", "KIND", "ID"))?;
    for s in &p.items {
        let (id, sub) = s.parts();
        let (id, sub) = (cell(id), cell(sub.unwrap_or("")));
        out.line(format_args!("{:<10} {id:<30} {sub}", s.kind().as_str()))?;
    }
    if let Some(n) = &p.next {
        out.line(format_args!("next: --after {}", shell_word(&scope_text(n))))?;
    }
    Ok(())
}

pub async fn keys(
    store: &Arc<dyn Store>,
    scope: &str,
    namespace: Option<String>,
    page: PageArgs,
    out: &mut Out,
) -> Result<(), Failure> {
    let scope = parse_scope(scope)?;
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
    let next = p.next.as_ref().map(json_text).transpose()?;
    if out.json {
        return out.json_line(&json!({"items": p.items, "next": next}));
    }
    out.line(format_args!("{:<24} KEY", "NAMESPACE"))?;
    for k in &p.items {
        let (ns, key) = (cell(&k.namespace), cell(&k.key));
        out.line(format_args!("{ns:<24} {key}"))?;
    }
    if let Some(n) = next {
        out.line(format_args!("next: --after {}", shell_word(&n)))?;
    }
    Ok(())
}

pub async fn get(store: &Arc<dyn Store>, a: &SlotArgs, out: &mut Out) -> Result<(), Failure> {
    let slot = slot_of(a)?;
    let r = store.load(&slot).await?;
    if r.version == 0 {
        return Err(Failure::new(
            Class::NotFound,
            format!("slot {slot} was never written"),
        ));
    }
    if out.json {
        return out.json_line(
            &json!({"value": r.value, "version": r.version, "expires_at": r.expires_at}),
        );
    }
    let value = match &r.value {
        Some(v) => json_text(v)?,
        None => "(deleted)".to_owned(),
    };
    out.line(format_args!("value:   {value}"))?;
    out.line(format_args!("version: {}", r.version))?;
    match r.expires_at {
        Some(t) => out.line(format_args!(
            "expires: {} ms since the epoch",
            t.as_millis()
        )),
        None => out.line("expires: never"),
    }
}

pub async fn history(
    store: &Arc<dyn Store>,
    slot: &SlotArgs,
    limit: usize,
    before: Option<u64>,
    out: &mut Out,
) -> Result<(), Failure> {
    let slot = slot_of(slot)?;
    state_core::backend::check_page_limit(limit)?;
    let history = store.slot_history(&slot, before, limit).await?;
    if history.is_empty() && before.is_none() {
        return Err(Failure::new(
            Class::NotFound,
            format!("the change log holds no version of slot {slot}"),
        ));
    }
    for c in &history {
        print_change(out, c, false)?;
    }
    Ok(())
}

pub async fn watch(
    store: &Arc<dyn Store>,
    scope: &str,
    from: Option<u64>,
    interval_ms: u64,
    count: Option<u64>,
    out: &mut Out,
) -> Result<(), Failure> {
    let scope = parse_scope(scope)?;
    let last = store.last_change().await?;
    let after = match from {
        Some(seq) if seq > last => {
            return Err(Failure::new(
                Class::Invalid,
                format!(
                    "--from {seq} is past the end of the change log (the newest change is {last}); \
                     resume from a sequence number watch printed, or leave --from out to start now"
                ),
            ));
        }
        Some(seq) => seq,
        None => last,
    };
    if !out.json {
        out.line(format_args!(
            "watching {} after change {after}",
            cell(&scope_text(&scope))
        ))?;
        out.flush()?;
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
        print_change(out, &c?, true)?;
        out.flush()?;
        changes += 1;
        if count.is_some_and(|n| changes >= n) {
            break;
        }
    }
    Ok(())
}

/// Prints one change: a JSON line, or `seq <n> [<namespace> <key>] v<version> <value> at <ms>`.
fn print_change(out: &mut Out, c: &Change, with_slot: bool) -> Result<(), Failure> {
    if out.json {
        return out.json_line(&json!({
            "seq": c.seq,
            "namespace": c.slot.namespace(),
            "key": c.slot.key(),
            "version": c.version,
            "value": c.value,
            "at": c.at.as_millis(),
        }));
    }
    let value = match &c.value {
        Some(v) => json_text(v)?,
        None => "(deleted)".to_owned(),
    };
    let slot = if with_slot {
        format!(" {} {}", cell(c.slot.namespace()), cell(c.slot.key()))
    } else {
        String::new()
    };
    out.line(format_args!(
        "seq {}{slot} v{} {value} at {}",
        c.seq,
        c.version,
        c.at.as_millis()
    ))
}
