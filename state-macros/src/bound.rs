//! Generics of generated types: the user's parameters plus the mode or batch parameter, and
//! the default bounds (`T: Serialize + DeserializeOwned + Send + Sync + 'static`) unless
//! `#[state(bound = "…")]` replaces them.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Generics, Ident, Type, WherePredicate, parse_quote};

use crate::ast::Container;

/// The user's type parameter idents.
pub(crate) fn type_params<'a>(cont: &'a Container<'_>) -> Vec<&'a Ident> {
    cont.generics.type_params().map(|p| &p.ident).collect()
}

/// The where-predicates every generated impl carries: the user's where clause, then either
/// the `bound` attribute's predicates or the default bounds on each type parameter.
pub(crate) fn predicates(cont: &Container<'_>, p: &TokenStream) -> Vec<WherePredicate> {
    let mut preds: Vec<WherePredicate> = cont
        .generics
        .where_clause
        .as_ref()
        .map(|w| w.predicates.iter().cloned().collect())
        .unwrap_or_default();
    match &cont.attrs.bound {
        Some(custom) => preds.extend(custom.iter().cloned()),
        None => {
            for t in type_params(cont) {
                preds.push(parse_quote!(
                    #t: #p::Serialize + #p::DeserializeOwned + #p::Send + #p::Sync + 'static
                ));
            }
        }
    }
    preds
}

/// Generics with `extra` appended (e.g. `M: Mode`), for impls.
pub(crate) fn with_param(generics: &Generics, extra: syn::GenericParam) -> Generics {
    let mut g = generics.clone();
    g.params.push(extra);
    g
}

/// The user's generic parameters without defaults or bounds, as arguments (`T, U`).
pub(crate) fn args(cont: &Container<'_>) -> TokenStream {
    let params = type_params(cont);
    quote!(#(#params,)*)
}

/// The user's parameters as declared (bounds and defaults kept), for generated struct
/// definitions whose own parameters after them have defaults too.
pub(crate) fn decl_params(cont: &Container<'_>) -> TokenStream {
    let params = cont.generics.params.iter();
    quote!(#(#params,)*)
}

/// The user's parameters with their bounds but without defaults, for generated struct
/// definitions that add a parameter without a default after them (a defaulted parameter may
/// not precede one).
pub(crate) fn decl_params_without_defaults(cont: &Container<'_>) -> TokenStream {
    let params = cont.generics.params.iter().cloned().map(|mut p| {
        match &mut p {
            syn::GenericParam::Type(t) => {
                t.eq_token = None;
                t.default = None;
            }
            syn::GenericParam::Const(c) => {
                c.eq_token = None;
                c.default = None;
            }
            syn::GenericParam::Lifetime(_) => {}
        }
        p
    });
    quote!(#(#params,)*)
}

/// The user's parameters without bounds (defaults kept), for type aliases: Rust does not
/// check an alias's bounds and warns about them (`type_alias_bounds`).
pub(crate) fn alias_params(cont: &Container<'_>) -> TokenStream {
    let params = cont.generics.params.iter().cloned().map(|mut p| {
        match &mut p {
            syn::GenericParam::Type(t) => {
                t.colon_token = None;
                t.bounds.clear();
            }
            syn::GenericParam::Lifetime(l) => {
                l.colon_token = None;
                l.bounds.clear();
            }
            syn::GenericParam::Const(_) => {}
        }
        p
    });
    quote!(#(#params,)*)
}

/// `PhantomData<fn() -> (T, U,)>`: keeps every user parameter used, adds no auto-trait bound.
pub(crate) fn marker_ty(
    cont: &Container<'_>,
    p: &TokenStream,
    extra: Option<&Ident>,
) -> TokenStream {
    let params = type_params(cont);
    let extra = extra.map(|e| quote!(#e,));
    quote!(#p::PhantomData<fn() -> (#extra #(#params,)*)>)
}

/// Whether a type mentions one of the user's type parameters (then its bounds are asked of
/// the impl, not checked at definition).
pub(crate) fn mentions_param(ty: &Type, params: &[&Ident]) -> bool {
    fn walk(ts: TokenStream, params: &[&Ident]) -> bool {
        ts.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) => params.iter().any(|p| **p == i),
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), params),
            _ => false,
        })
    }
    walk(ty.to_token_stream(), params)
}

/// A type parameter name for generated code (`M`, else `M2`, …) that is none of the item's
/// own generic parameters and no name the item uses (`used`: its name and its fields' types,
/// so a user type called `M` is not shadowed).
pub(crate) fn fresh(generics: &Generics, used: &[String], base: &str) -> Ident {
    let mut taken: Vec<String> = generics
        .params
        .iter()
        .map(|p| match p {
            syn::GenericParam::Type(t) => t.ident.to_string(),
            syn::GenericParam::Lifetime(l) => l.lifetime.ident.to_string(),
            syn::GenericParam::Const(c) => c.ident.to_string(),
        })
        .collect();
    taken.extend(used.iter().cloned());
    let mut name = base.to_owned();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}{n}");
        n += 1;
    }
    Ident::new(&name, proc_macro2::Span::call_site())
}

/// Every identifier in `tokens` (for [`fresh`]).
pub(crate) fn idents_in(tokens: TokenStream) -> Vec<String> {
    let mut out = Vec::new();
    for tt in tokens {
        match tt {
            proc_macro2::TokenTree::Ident(i) => out.push(i.to_string()),
            proc_macro2::TokenTree::Group(g) => out.extend(idents_in(g.stream())),
            _ => {}
        }
    }
    out
}

/// The names a container uses: its own and every identifier in its fields' types.
pub(crate) fn used_names(cont: &Container<'_>) -> Vec<String> {
    let mut used = vec![cont.ident.to_string()];
    for f in cont.fields.iter().flatten() {
        used.extend(idents_in(f.ty.to_token_stream()));
    }
    used
}
