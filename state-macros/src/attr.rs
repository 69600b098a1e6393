//! Parsing of `#[state(...)]` attributes, and of the `#[serde(...)]` attributes that decide
//! how values are stored (names, flatten, with, skip).

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Attribute, Expr, LitStr, Token, WherePredicate};

use crate::case::RenameRule;
use crate::ctxt::Ctxt;

/// Which derive is reading the attributes (each accepts its own set).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Derive {
    StateScope,
    StatePath,
}

impl Derive {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Derive::StateScope => "StateScope",
            Derive::StatePath => "StatePath",
        }
    }
}

/// A scope a field (or a struct, as its default) may choose: `#[state(user)]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ScopeName {
    Execution,
    Workflow,
    Object,
    User,
    App,
    Session,
    Temp,
}

impl ScopeName {
    const ALL: [ScopeName; 7] = [
        ScopeName::Execution,
        ScopeName::Workflow,
        ScopeName::Object,
        ScopeName::User,
        ScopeName::App,
        ScopeName::Session,
        ScopeName::Temp,
    ];

    /// The attribute as written.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ScopeName::Execution => "execution",
            ScopeName::Workflow => "workflow",
            ScopeName::Object => "object",
            ScopeName::User => "user",
            ScopeName::App => "app",
            ScopeName::Session => "session",
            ScopeName::Temp => "temp",
        }
    }

    /// The `FieldScope` variant a field of this scope binds with.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            ScopeName::Execution => "Execution",
            ScopeName::Workflow => "Workflow",
            ScopeName::Object => "Object",
            ScopeName::User => "User",
            ScopeName::App => "App",
            ScopeName::Session => "Session",
            ScopeName::Temp => "Temp",
        }
    }
}

/// The name of one `#[state(...)]` attribute.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AttrName {
    Namespace,
    Crate,
    Bound,
    Default,
    Initial,
    Rename,
    Skip,
    Leaf,
    Ttl,
    MaxRetries,
    Scope(ScopeName),
}

impl AttrName {
    const NAMED: [AttrName; 10] = [
        AttrName::Namespace,
        AttrName::Crate,
        AttrName::Bound,
        AttrName::Default,
        AttrName::Initial,
        AttrName::Rename,
        AttrName::Skip,
        AttrName::Leaf,
        AttrName::Ttl,
        AttrName::MaxRetries,
    ];

    fn parse(ident: &str) -> Option<AttrName> {
        let named = Self::NAMED.into_iter().find(|n| n.as_str() == ident);
        named.or_else(|| {
            let scope = ScopeName::ALL.into_iter().find(|s| s.as_str() == ident);
            scope.map(AttrName::Scope)
        })
    }

    /// The attribute as written.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AttrName::Namespace => "namespace",
            AttrName::Crate => "crate",
            AttrName::Bound => "bound",
            AttrName::Default => "default",
            AttrName::Initial => "initial",
            AttrName::Rename => "rename",
            AttrName::Skip => "skip",
            AttrName::Leaf => "leaf",
            AttrName::Ttl => "ttl",
            AttrName::MaxRetries => "max_retries",
            AttrName::Scope(s) => s.as_str(),
        }
    }
}

use AttrName as A;

const SCOPE_CONTAINER: &[AttrName] = &[A::Namespace, A::Crate, A::Bound, A::Default, A::MaxRetries];
const SCOPE_FIELD: &[AttrName] = &[
    A::Initial,
    A::Default,
    A::Rename,
    A::Skip,
    A::Leaf,
    A::Ttl,
    A::MaxRetries,
];
const PATH_CONTAINER: &[AttrName] = &[A::Crate, A::Bound];
const PATH_FIELD: &[AttrName] = &[A::Leaf];

/// A value with the span of the token it came from.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// Attributes of the struct.
#[derive(Default)]
pub(crate) struct ContainerAttrs {
    pub(crate) namespace: Option<Spanned<String>>,
    pub(crate) krate: Option<syn::Path>,
    pub(crate) bound: Option<Vec<WherePredicate>>,
    pub(crate) default: bool,
    pub(crate) scope: Option<Spanned<ScopeName>>,
    pub(crate) rename_all: Option<RenameRule>,
    /// `#[state(max_retries = 3)]`: every field's `update` retries.
    pub(crate) max_retries: Option<u32>,
}

/// Attributes of one field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    pub(crate) initial: Option<Expr>,
    pub(crate) default: bool,
    pub(crate) rename: Option<Spanned<String>>,
    pub(crate) skip: bool,
    pub(crate) leaf: bool,
    pub(crate) scope: Option<Spanned<ScopeName>>,
    /// `#[state(ttl = "30s")]`, in milliseconds.
    pub(crate) ttl_ms: Option<u64>,
    /// `#[state(max_retries = 3)]`: this field's `update` retries.
    pub(crate) max_retries: Option<u32>,
    /// `#[serde(rename = "…")]`: the stored name inside a parent object.
    pub(crate) serde_rename: Option<String>,
    pub(crate) serde_flatten: bool,
    pub(crate) serde_with: bool,
    pub(crate) serde_skip: bool,
    /// Where each `#[state(...)]` attribute of the field was written, for errors about it.
    pub(crate) spans: Vec<(AttrName, Span)>,
}

impl FieldAttrs {
    /// The span of attribute `name` on this field, if it was written.
    pub(crate) fn span_of(&self, name: AttrName) -> Option<Span> {
        self.spans.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }
}

/// Tracks which attributes one item already had, to report duplicates.
struct Seen(Vec<AttrName>);

impl Seen {
    fn first(&mut self, cx: &Ctxt, meta: &ParseNestedMeta<'_>, name: AttrName) -> bool {
        if self.0.contains(&name) {
            let name = name.as_str();
            cx.recoverable_spanned_by(&meta.path, format!("duplicate `{name}` attribute"));
            false
        } else {
            self.0.push(name);
            true
        }
    }
}

/// The attributes an item accepts, for an error message: `allowed`, then (on a
/// `StateScope`) every scope.
fn one_of(derive: Derive, allowed: &[AttrName]) -> String {
    let scopes = match derive {
        Derive::StateScope => &ScopeName::ALL[..],
        Derive::StatePath => &[],
    };
    let names = allowed
        .iter()
        .copied()
        .chain(scopes.iter().map(|s| A::Scope(*s)));
    let all: Vec<String> = names.map(|n| format!("`{}`", n.as_str())).collect();
    all.join(", ")
}

/// After a malformed value: consumes what is left of this attribute, up to the next `,`, so
/// parsing goes on and the attributes after it are checked too.
fn skip_rest(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

/// Consumes whatever value follows an attribute name we reject, so parsing goes on and every
/// error is reported at once.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

/// A flag attribute (`default`, `user`, …) given a value: an error naming it, and the value
/// skipped (syn would only say "expected `,`").
fn takes_no_value(cx: &Ctxt, meta: &ParseNestedMeta<'_>, ident: &str) -> syn::Result<()> {
    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(&meta.path, format!("`{ident}` takes no value"));
        return skip_value(meta);
    }
    Ok(())
}

fn lit_str(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    meta.value()?.parse::<LitStr>()
}

/// Walks the `#[state(...)]` attributes of one item (a struct or a field): reports unknown
/// and duplicate names and conflicting scopes, records the scope, and hands every other known
/// attribute to `known`. `#[serde(...)]` attributes go to `serde`.
#[allow(clippy::too_many_arguments)]
fn for_each_state_attr(
    cx: &Ctxt,
    derive: Derive,
    item: &str,
    allowed: &[AttrName],
    attrs: &[Attribute],
    scope: &mut Option<Spanned<ScopeName>>,
    mut serde: impl FnMut(&Attribute),
    mut known: impl FnMut(AttrName, &ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    let mut seen = Seen(Vec::new());
    for attr in attrs {
        if attr.path().is_ident("serde") {
            serde(attr);
            continue;
        }
        if !attr.path().is_ident("state") {
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            let Some(ident) = meta.path.get_ident().map(ToString::to_string) else {
                cx.error_spanned_by(&meta.path, "expected a `state` attribute name");
                return skip_value(&meta);
            };
            match AttrName::parse(&ident) {
                Some(A::Scope(s)) if derive == Derive::StateScope => {
                    set_scope(cx, &meta, item, scope, s);
                    takes_no_value(cx, &meta, &ident)
                }
                Some(name) if allowed.contains(&name) => {
                    if !seen.first(cx, &meta, name) {
                        return skip_value(&meta);
                    }
                    if let Err(e) = known(name, &meta) {
                        // Report it and go on: the attributes after it are checked too.
                        cx.syn_error(e);
                        return skip_rest(&meta);
                    }
                    takes_no_value(cx, &meta, &ident)
                }
                _ if derive == Derive::StateScope && GROUP_WORDS.contains(&ident.as_str()) => {
                    let msg = format!(
                        "`{ident}` is not a scope of a struct's fields: a Motia-style group of items is a keyed collection, `engine.collection::<V>(Scope::group(name)?, \"Namespace\")?`, whose entries are typed handles; a field here takes a scope like `#[state(app)]` or `#[state(user)]`"
                    );
                    cx.error_spanned_by(&meta.path, msg);
                    skip_value(&meta)
                }
                _ => {
                    let expected = one_of(derive, allowed);
                    let derive = derive.name();
                    let msg = format!(
                        "unknown `{derive}` {item} attribute `{ident}`; expected one of {expected}"
                    );
                    cx.error_spanned_by(&meta.path, msg);
                    skip_value(&meta)
                }
            }
        });
        if let Err(e) = parsed {
            cx.syn_error(e);
        }
    }
}

/// Records the scope attribute `name`, or reports that the item already has one.
fn set_scope(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    item: &str,
    scope: &mut Option<Spanned<ScopeName>>,
    name: ScopeName,
) {
    if let Some(prev) = scope.as_ref() {
        let what = if item == "struct" {
            "a struct has one default scope"
        } else {
            "a field has one scope"
        };
        let (name, prev) = (name.as_str(), prev.value.as_str());
        let msg = format!("{what}: `{name}` conflicts with `{prev}`");
        cx.error_spanned_by(&meta.path, msg);
    } else {
        *scope = Some(Spanned {
            value: name,
            span: meta.path.span(),
        });
    }
}

/// Parses the struct's `#[state(...)]` and `#[serde(rename_all)]` attributes.
pub(crate) fn container(cx: &Ctxt, derive: Derive, attrs: &[Attribute]) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    let mut scope = None;
    let mut rename_all = None;
    let allowed = match derive {
        Derive::StateScope => SCOPE_CONTAINER,
        Derive::StatePath => PATH_CONTAINER,
    };
    let mut reshaped = Vec::new();
    let serde = |attr: &Attribute| serde_container(attr, &mut rename_all, &mut reshaped);
    for_each_state_attr(
        cx,
        derive,
        "struct",
        allowed,
        attrs,
        &mut scope,
        serde,
        |name, meta| {
            match name {
                A::Namespace => {
                    let s = lit_str(meta)?;
                    out.namespace = Some(Spanned {
                        value: s.value(),
                        span: s.span(),
                    });
                }
                A::Crate => {
                    let s = lit_str(meta)?;
                    match s.parse::<syn::Path>() {
                        Ok(p) => out.krate = Some(p),
                        Err(_) => {
                            cx.error_spanned_by(&s, "`crate` expects a path, like \"::state_core\"")
                        }
                    }
                }
                A::Bound => {
                    let s = lit_str(meta)?;
                    let parser = Punctuated::<WherePredicate, Token![,]>::parse_terminated;
                    match s.parse_with(parser) {
                        Ok(preds) => out.bound = Some(preds.into_iter().collect()),
                        Err(e) => cx.error_spanned_by(
                            &s,
                            format!(
                                "`bound` expects where-clause predicates, like \"T: Clone\": {e}"
                            ),
                        ),
                    }
                }
                A::Default => out.default = true,
                A::MaxRetries => out.max_retries = max_retries(cx, meta)?,
                _ => {}
            }
            Ok(())
        },
    );
    out.scope = scope;
    out.rename_all = rename_all;
    for path in reshaped {
        let what = path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let msg = match derive {
            Derive::StatePath => format!(
                "`#[serde({what})]` changes how this type is stored, so its fields have no paths of their own; remove it, or drop `StatePath` and mark fields of this type `#[state(leaf)]` to update them as a whole"
            ),
            Derive::StateScope => format!(
                "`#[serde({what})]` is not supported on a `StateScope` struct: each of its fields is a slot of its own, stored under its own name"
            ),
        };
        cx.error_spanned_by(path, msg);
    }
    out
}

/// Parses one field's `#[state(...)]` and storage-relevant `#[serde(...)]` attributes.
pub(crate) fn field(cx: &Ctxt, derive: Derive, attrs: &[Attribute]) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    let mut scope = None;
    let mut serde_attrs = SerdeField::default();
    let allowed = match derive {
        Derive::StateScope => SCOPE_FIELD,
        Derive::StatePath => PATH_FIELD,
    };
    let serde = |attr: &Attribute| serde_field(attr, &mut serde_attrs);
    for_each_state_attr(
        cx,
        derive,
        "field",
        allowed,
        attrs,
        &mut scope,
        serde,
        |name, meta| {
            out.spans.push((name, meta.path.span()));
            match name {
                A::Initial => out.initial = Some(meta.value()?.parse::<Expr>()?),
                A::Rename => {
                    let s = lit_str(meta)?;
                    out.rename = Some(Spanned {
                        value: s.value(),
                        span: s.span(),
                    });
                }
                A::Default => out.default = true,
                A::Skip => out.skip = true,
                A::Leaf => out.leaf = true,
                A::Ttl => {
                    if let Some(ms) = ttl_ms(cx, meta)? {
                        out.ttl_ms = Some(ms);
                    }
                }
                A::MaxRetries => out.max_retries = max_retries(cx, meta)?,
                _ => {}
            }
            Ok(())
        },
    );
    out.scope = scope;
    out.serde_rename = serde_attrs.rename;
    out.serde_flatten = serde_attrs.flatten;
    out.serde_with = serde_attrs.with;
    out.serde_skip = serde_attrs.skip;
    out
}

/// The storage-relevant serde attributes of a field.
#[derive(Default)]
struct SerdeField {
    rename: Option<String>,
    flatten: bool,
    with: bool,
    skip: bool,
}

/// Reads serde's container attributes that decide stored names, and notes those that change
/// the stored shape (`transparent`, `from`, `try_from`, `into`): paths could not follow them.
/// Malformed serde attributes are serde's to report; they are skipped here.
fn serde_container(
    attr: &Attribute,
    rename_all: &mut Option<RenameRule>,
    reshaped: &mut Vec<syn::Path>,
) {
    let _ = attr.parse_nested_meta(|meta| {
        if ["transparent", "from", "try_from", "into"]
            .iter()
            .any(|n| meta.path.is_ident(n))
        {
            reshaped.push(meta.path.clone());
            return skip_value(&meta);
        }
        if meta.path.is_ident("rename_all") {
            if meta.input.peek(Token![=]) {
                let s = lit_str(&meta)?;
                *rename_all = RenameRule::from_str(&s.value());
            } else {
                // rename_all(serialize = "…", deserialize = "…"): paths follow the stored
                // (serialized) names.
                meta.parse_nested_meta(|inner| {
                    let s = lit_str(&inner)?;
                    if inner.path.is_ident("serialize") {
                        *rename_all = RenameRule::from_str(&s.value());
                    }
                    Ok(())
                })?;
            }
            return Ok(());
        }
        skip_value(&meta)
    });
}

fn serde_field(attr: &Attribute, out: &mut SerdeField) {
    let _ = attr.parse_nested_meta(|meta| {
        let p = &meta.path;
        if p.is_ident("rename") {
            if meta.input.peek(Token![=]) {
                out.rename = Some(lit_str(&meta)?.value());
            } else {
                meta.parse_nested_meta(|inner| {
                    let s = lit_str(&inner)?;
                    if inner.path.is_ident("serialize") {
                        out.rename = Some(s.value());
                    }
                    Ok(())
                })?;
            }
            return Ok(());
        }
        if p.is_ident("flatten") {
            out.flatten = true;
            return Ok(());
        }
        if p.is_ident("with") || p.is_ident("serialize_with") || p.is_ident("deserialize_with") {
            out.with = true;
        }
        if p.is_ident("skip") || p.is_ident("skip_serializing") {
            out.skip = true;
        }
        skip_value(&meta)
    });
}

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"7d"` into milliseconds (positive, no overflow).
/// Attribute names a Motia or Weft user may reach for to key a group of items.
const GROUP_WORDS: &[&str] = &["group", "collection", "keyed"];

/// `ttl = "30s"` in milliseconds; a number or another literal is an error suggesting the
/// string form (a number is read as seconds for the suggestion: `3600` → `"1h"`).
fn ttl_ms(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<u64>> {
    const FORMS: &str = "like \"250ms\", \"30s\", \"5m\", \"2h\" or \"7d\"";
    let lit = meta.value()?.parse::<syn::Lit>()?;
    match &lit {
        syn::Lit::Str(s) => {
            let ms = parse_duration_ms(&s.value());
            if ms.is_none() {
                cx.error_spanned_by(s, format!("`ttl` expects a positive duration {FORMS}"));
            }
            Ok(ms)
        }
        syn::Lit::Int(n) => {
            let hint = match n.base10_parse::<u64>() {
                Ok(secs) if secs > 0 => format!(
                    "; `ttl = {n}` as seconds is `ttl = \"{}\"`",
                    duration_text(secs)
                ),
                _ => String::new(),
            };
            cx.error_spanned_by(
                n,
                format!("`ttl` takes a duration string with its unit, {FORMS}{hint}"),
            );
            Ok(None)
        }
        other => {
            cx.error_spanned_by(
                other,
                format!("`ttl` takes a duration string with its unit, {FORMS}"),
            );
            Ok(None)
        }
    }
}

/// `max_retries = 3`: a whole number of retries after the first attempt.
fn max_retries(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<u32>> {
    let lit = meta.value()?.parse::<syn::Lit>()?;
    let n = match &lit {
        syn::Lit::Int(n) => n.base10_parse::<u32>().ok(),
        _ => None,
    };
    if n.is_none() {
        cx.error_spanned_by(
            &lit,
            "`max_retries` takes a whole number of retries after the first attempt, like `max_retries = 3` (0: one attempt)",
        );
    }
    Ok(n)
}

/// `secs` in the largest unit that divides it: 3600 → `1h`, 90 → `90s`.
fn duration_text(secs: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

pub(crate) fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor).filter(|ms| *ms > 0)
}
