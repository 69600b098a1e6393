//! Checks on the parsed model; each failure is recorded with a span on the user's token.

use std::collections::HashMap;

use crate::ast::{Container, Shape, option_inner};
use crate::attr::{AttrName, Derive, ScopeName};
use crate::ctxt::Ctxt;

/// Names a field cannot have because a generated method already has them.
const RESERVED_STATE: &[&str] = &["load", "batch", "read_only", "to_value"];
pub(crate) const RESERVED_PATH: &[&str] = &["set", "delete"];

/// Checks a `#[derive(StateScope)]` or `#[derive(StatePath)]` input.
pub(crate) fn check(cx: &Ctxt, derive: Derive, cont: &Container<'_>) {
    check_generics(cx, derive, cont);
    match (derive, cont.shape) {
        (_, Shape::Named) => {}
        (Derive::StatePath, Shape::Enum | Shape::Tuple | Shape::Unit) => {}
        (_, shape) => {
            let what = match shape {
                Shape::Tuple => "a tuple struct",
                Shape::Unit => "a unit struct",
                Shape::Enum => "an enum",
                Shape::Union | Shape::Named => "a union",
            };
            let fix = match derive {
                Derive::StateScope => {
                    "each slot is a named field: use a struct with named fields (`struct Research { attempts: u32 }`)"
                }
                Derive::StatePath => "use a struct with named fields, or an enum (a leaf value)",
            };
            cx.error_spanned_by(
                cont.ident,
                format!("`{}` cannot be derived for {what}: {fix}", derive.name()),
            );
        }
    }
    let Some(fields) = &cont.fields else { return };
    match derive {
        Derive::StateScope => check_scope(cx, cont),
        Derive::StatePath => {
            for f in fields {
                // Recoverable: the cursor is generated without that field's method, so the
                // other fields' paths keep working where the user calls them.
                if RESERVED_PATH.contains(&f.name.as_str()) && !f.attrs.serde_skip {
                    cx.recoverable_spanned_by(
                        f.ident,
                        format!(
                            "a field named `{}` collides with the cursor's own `{}` method; rename the field and keep its stored name with `#[serde(rename = \"{}\")]`",
                            f.name, f.name, f.name
                        ),
                    );
                }
            }
        }
    }
}

fn check_generics(cx: &Ctxt, derive: Derive, cont: &Container<'_>) {
    for param in &cont.generics.params {
        match param {
            syn::GenericParam::Type(_) => {}
            syn::GenericParam::Lifetime(l) => cx.error_spanned_by(
                l,
                format!(
                    "`{}` does not support lifetime parameters: state values are owned (`DeserializeOwned`)",
                    derive.name()
                ),
            ),
            syn::GenericParam::Const(c) => cx.error_spanned_by(
                c,
                format!("`{}` does not support const parameters", derive.name()),
            ),
        }
    }
}

fn check_scope(cx: &Ctxt, cont: &Container<'_>) {
    let Some(fields) = &cont.fields else { return };
    if let Some(ns) = &cont.attrs.namespace
        && let Some(problem) = name_problem(&ns.value)
    {
        cx.syn_error(syn::Error::new(ns.span, format!("namespace {problem}")));
    }
    let mut keys: HashMap<String, &syn::Ident> = HashMap::new();
    for f in fields {
        let a = &f.attrs;
        // Errors about an attribute point at it (the field's name if it has no span).
        let at = |name: AttrName| a.span_of(name).unwrap_or_else(|| f.ident.span());
        if a.skip {
            for (set, name, span) in [
                (a.initial.is_some(), "initial", at(AttrName::Initial)),
                (a.rename.is_some(), "rename", at(AttrName::Rename)),
                (
                    a.scope.is_some(),
                    "a scope",
                    a.scope.as_ref().map_or_else(|| f.ident.span(), |s| s.span),
                ),
                (a.leaf, "leaf", at(AttrName::Leaf)),
                (a.ttl_ms.is_some(), "ttl", at(AttrName::Ttl)),
                (
                    a.max_retries.is_some(),
                    "max_retries",
                    at(AttrName::MaxRetries),
                ),
            ] {
                if set {
                    cx.syn_error(syn::Error::new(
                        span,
                        format!("`skip` fields are not stored, so `{name}` has no effect on `{}`; remove one of them", f.name),
                    ));
                }
            }
            continue;
        }
        let scope = a
            .scope
            .as_ref()
            .or(cont.attrs.scope.as_ref())
            .map(|s| s.value);
        if a.max_retries.is_some() && scope == Some(ScopeName::Session) {
            cx.syn_error(syn::Error::new(
                at(AttrName::MaxRetries),
                "session state has one writer, so its `update`s never conflict and `max_retries` has nothing to do; remove it (or give the field a shared scope like `#[state(user)]`)",
            ));
        }
        if RESERVED_STATE.contains(&f.name.as_str()) {
            cx.error_spanned_by(
                f.ident,
                format!(
                    "a field named `{}` collides with the generated `{}` method; rename the field and keep its key with `#[state(rename = \"{}\")]`",
                    f.name, f.name, f.name
                ),
            );
        }
        if let Some(inner) = option_inner(f.ty)
            && option_inner(inner).is_some()
        {
            cx.error_spanned_by(
                f.ty,
                "a slot's absence is already its `None`, and JSON null is never stored for it: `Option<Option<T>>` cannot keep `Some(None)`; use `Option<T>`, or wrap the inner value in a type of your own",
            );
        }
        if a.default && option_inner(f.ty).is_some() {
            cx.syn_error(syn::Error::new(
                at(AttrName::Default),
                "an `Option` field is already `None` when absent; remove `default`",
            ));
        }
        let key = a
            .rename
            .as_ref()
            .map_or_else(|| f.name.clone(), |r| r.value.clone());
        if let Some(r) = &a.rename
            && let Some(problem) = name_problem(&r.value)
        {
            cx.syn_error(syn::Error::new(r.span, format!("key {problem}")));
        }
        if let Some(first) = keys.get(&key) {
            cx.error_spanned_by(
                f.ident,
                format!(
                    "fields `{first}` and `{}` both use the key \"{key}\": two fields would share one slot; give one a different `#[state(rename = \"…\")]`",
                    f.ident
                ),
            );
        } else {
            keys.insert(key, f.ident);
        }
    }
}

/// Why a namespace or key is unusable (non-empty, at most 256 bytes, no NUL), if it is.
fn name_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        Some("must not be empty".into())
    } else if s.len() > 256 {
        Some(format!("is {} bytes long; the limit is 256", s.len()))
    } else if s.contains('\0') {
        Some("must not contain NUL".into())
    } else {
        None
    }
}
