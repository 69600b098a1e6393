//! Expansion of `#[derive(StatePath)]`: a cursor type whose methods are the struct's fields
//! (named as serde stores them), so nested batch paths are checked at compile time.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, WherePredicate, parse_quote};

use crate::ast::{Container, Field, option_inner};
use crate::{bound, check};

pub(crate) fn expand(cont: &Container<'_>, krate: &syn::Path) -> TokenStream {
    let p = quote!(#krate::__private);
    let used = bound::used_names(cont);
    let b = bound::fresh(cont.generics, &used, "B");
    let d = bound::fresh(cont.generics, &used, "D");
    match &cont.fields {
        Some(fields) => expand_struct(cont, fields, krate, &b, &d),
        None => expand_leaf(cont, &p, &b, &d),
    }
}

/// Enums, tuple and unit structs: a leaf value, set or deleted as a whole.
fn expand_leaf(cont: &Container<'_>, p: &TokenStream, b: &Ident, d: &Ident) -> TokenStream {
    let ident = cont.ident;
    let (_, user_ty, _) = cont.generics.split_for_impl();
    let preds = bound::predicates(cont, p);
    let with_b = bound::with_param(cont.generics, parse_quote!(#b));
    let (impl_b, _, _) = with_b.split_for_impl();
    quote! {
        #[allow(unused_qualifications, clippy::all)]
        const _: () = {
            #[automatically_derived]
            impl #impl_b #p::PathTarget<#b> for #ident #user_ty where #(#preds,)* {
                type Cursor<#d> = #p::Cursor<Self, #b, #d>;
                fn cursor<#d>(at: #p::At<#b>) -> Self::Cursor<#d> {
                    #p::Cursor::new(at)
                }
            }
        };
    }
}

/// A struct with named fields: a `{Name}Path` cursor with one method per stored field.
fn expand_struct(
    cont: &Container<'_>,
    fields: &[Field<'_>],
    krate: &syn::Path,
    b: &Ident,
    d: &Ident,
) -> TokenStream {
    let p = &quote!(#krate::__private);
    let ident = cont.ident;
    let (_, user_ty, _) = cont.generics.split_for_impl();
    let preds = bound::predicates(cont, p);
    let name = ident.unraw().to_string();
    let vis = cont.vis;
    let path_ty = format_ident!("{}Path", name, span = ident.span());
    let decl = bound::decl_params_without_defaults(cont);
    let args = bound::args(cont);
    let user_where = &cont.generics.where_clause;
    let marker = bound::marker_ty(cont, p, Some(d));
    let with_b = bound::with_param(cont.generics, parse_quote!(#b));
    let (impl_b, _, _) = with_b.split_for_impl();
    let with_bd = bound::with_param(&with_b, parse_quote!(#d));
    let (impl_bd, _, _) = with_bd.split_for_impl();

    let mut cursor_preds = preds.clone();
    cursor_preds.push(parse_quote!(#b: #p::BatchSink));
    let methods: Vec<TokenStream> = fields
        .iter()
        .filter(|f| !f.attrs.serde_skip && !check::RESERVED_PATH.contains(&f.name.as_str()))
        .map(|f| field_method(cont, f, krate, b, &mut cursor_preds))
        .collect();

    let doc = cursor_doc(&name);
    let patch = Patch::new(cont, fields, p);
    let (patch_items, patch_ty) = (patch.items(), &patch.ty);
    let merge = patch.merge_body();

    quote! {
        #[doc = #doc]
        #[must_use = "a batch path does nothing until an op ends the chain"]
        #[allow(unused_qualifications)]
        #vis struct #path_ty<#decl #b, #d = #p::Required> #user_where {
            at: #p::At<#b>,
            __state_marker: #marker,
        }

        #[allow(unused_qualifications, clippy::all)]
        impl #impl_bd #path_ty<#args #b, #d> where #(#cursor_preds,)* {
                #(#methods)*

                /// Replaces the whole value at this path.
                #vis fn set(self, value: #ident #user_ty) -> #b {
                    self.at.set(&value)
                }

                /// Sets the fields `patch` has (`Some`) and leaves the others as stored — a
                /// typed shallow merge, one op per field, in the same write; an `Option`
                /// field's `Some(None)` deletes it. Fails at commit if no value is stored here.
                #vis fn merge(self, patch: #patch_ty<#args>) -> #b {
                    #merge
                }

                /// Removes the value at this path (only where it may be absent: a whole slot,
                /// an `Option` field, a map entry).
                #vis fn delete(self) -> #b
                where
                    #d: #p::CanDelete,
                {
                    self.at.delete()
                }
        }

        #patch_items

        #[allow(unused_qualifications, clippy::all)]
        const _: () = {
            #[automatically_derived]
            impl #impl_b #p::PathTarget<#b> for #ident #user_ty where #(#preds,)* {
                type Cursor<#d> = #path_ty<#args #b, #d>;
                fn cursor<#d>(at: #p::At<#b>) -> Self::Cursor<#d> {
                    #path_ty { at, __state_marker: #p::PhantomData }
                }
            }
        };
    }
}

/// The cursor method of one field, at its stored name: a whole-value cursor for a leaf, a
/// flattened or custom-format field (the last two refused where `set` is not enough), else
/// the field type's own paths (whose bound joins `cursor_preds` when it is generic).
fn field_method(
    cont: &Container<'_>,
    f: &Field<'_>,
    krate: &syn::Path,
    b: &Ident,
    cursor_preds: &mut Vec<WherePredicate>,
) -> TokenStream {
    let p = &quote!(#krate::__private);
    let (fid, ty, vis) = (f.ident, f.ty, cont.vis);
    let span = ty.span();
    let segment = segment(cont, f);
    let docs = if f.docs.is_empty() {
        let d = format!("The `{}` field, as a batch path.", f.name);
        quote!(#[doc = #d])
    } else {
        let docs = &f.docs;
        quote!(#(#docs)*)
    };
    let at = quote!(self.at.child(#segment));
    let whole = quote!(#p::Cursor::new(#at));
    let (guard, ret, body) = if f.attrs.serde_flatten || f.attrs.serde_with {
        let marker_ty = if f.attrs.serde_flatten {
            quote!(#krate::path::Flattened<#b>: #krate::path::FlattenedPath)
        } else {
            quote!(#krate::path::CustomFormat<#b>: #krate::path::CustomFormatPath)
        };
        let ret = quote!(#p::Cursor<#ty, #b, #p::Required>);
        (quote_spanned!(span=> where #marker_ty), ret, whole)
    } else if f.attrs.leaf {
        let ret = match option_inner(ty) {
            Some(inner) => quote_spanned!(span=> #p::Cursor<#inner, #b, #p::Deletable>),
            None => quote_spanned!(span=> #p::Cursor<#ty, #b, #p::Required>),
        };
        (quote!(), ret, whole)
    } else {
        if bound::mentions_param(ty, &bound::type_params(cont)) {
            cursor_preds.push(parse_quote!(#ty: #p::PathTarget<#b>));
        }
        (
            quote!(),
            quote_spanned!(span=> <#ty as #p::PathTarget<#b>>::Cursor<#p::Required>),
            quote_spanned!(span=> <#ty as #p::PathTarget<#b>>::cursor::<#p::Required>(#at)),
        )
    };
    let body = quote_spanned!(span=> #body);
    quote! {
        #docs
        #vis fn #fid(self) -> #ret #guard {
            #body
        }
    }
}

/// The `{Name}Patch` of a struct: each field that a path can set, as an `Option`.
struct Patch<'a> {
    cont: &'a Container<'a>,
    fields: Vec<&'a Field<'a>>,
    p: &'a TokenStream,
    ty: Ident,
}

impl<'a> Patch<'a> {
    /// Flattened and custom-format fields have no path to set and are left out, as are
    /// fields serde skips.
    fn new(cont: &'a Container<'a>, fields: &'a [Field<'a>], p: &'a TokenStream) -> Self {
        let fields = fields
            .iter()
            .filter(|f| !f.attrs.serde_skip && !f.attrs.serde_flatten && !f.attrs.serde_with)
            .collect();
        let ty = format_ident!("{}Patch", cont.ident.unraw(), span = cont.ident.span());
        Patch {
            cont,
            fields,
            p,
            ty,
        }
    }

    /// A marker field for the struct's type parameters that no patch field mentions (one
    /// used only by a skipped or flattened field), so the patch still uses each: its
    /// declaration, and its value.
    fn marker(&self) -> Option<(TokenStream, TokenStream)> {
        let p = self.p;
        let params = bound::type_params(self.cont);
        let unused: Vec<&&Ident> = params
            .iter()
            .filter(|t| {
                !self
                    .fields
                    .iter()
                    .any(|f| bound::mentions_param(f.ty, &[**t]))
            })
            .collect();
        if unused.is_empty() {
            return None;
        }
        let vis = self.cont.vis;
        Some((
            quote!(#[doc(hidden)] #vis __state_marker: #p::PhantomData<fn() -> (#(#unused,)*)>,),
            quote!(__state_marker: #p::PhantomData,),
        ))
    }

    /// The patch struct and its `Default` (every field `None`).
    fn items(&self) -> TokenStream {
        let Patch { cont, p, ty, .. } = self;
        let (vis, ident) = (cont.vis, cont.ident);
        let (impl_g, ty_g, where_g) = cont.generics.split_for_impl();
        let decl = bound::decl_params(cont);
        let fid: Vec<&Ident> = self.fields.iter().map(|f| f.ident).collect();
        let field_ty = self.fields.iter().map(|f| f.ty);
        let traits = self.std_traits();
        let (marker_decl, marker_value) = self.marker().unzip();
        let doc = format!(
            "Some fields of a [`{}`], for a typed shallow merge (`merge` on its batch path): \
             `None` leaves a field as stored.\n\nGenerated by `#[derive(StatePath)]`.",
            ident.unraw()
        );
        quote! {
            #[doc = #doc]
            #[allow(unused_qualifications)]
            #vis struct #ty<#decl> #where_g {
                #(
                    #[allow(missing_docs)]
                    #vis #fid: #p::Option<#field_ty>,
                )*
                #marker_decl
            }

            #[automatically_derived]
            #[allow(unused_qualifications)]
            impl #impl_g #p::Default for #ty #ty_g #where_g {
                fn default() -> Self {
                    #ty { #( #fid: #p::None, )* #marker_value }
                }
            }

            #traits
        }
    }

    /// `Debug`, `Clone` and `PartialEq` of the patch, each where every field has it: the
    /// fields' bounds are higher-ranked, so a field type without one leaves that impl out
    /// instead of failing the derive.
    fn std_traits(&self) -> TokenStream {
        let Patch { cont, p, ty, .. } = self;
        let (impl_g, ty_g, where_g) = cont.generics.split_for_impl();
        let preds: Vec<TokenStream> = where_g
            .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
            .unwrap_or_default();
        let fid: Vec<&Ident> = self.fields.iter().map(|f| f.ident).collect();
        let names: Vec<String> = fid.iter().map(|f| f.unraw().to_string()).collect();
        let field_ty: Vec<&syn::Type> = self.fields.iter().map(|f| f.ty).collect();
        let bounded = |t: TokenStream| {
            let mut all = preds.clone();
            all.extend(field_ty.iter().map(|ty| quote!(for<'__p> #ty: #t)));
            all
        };
        let (debug, clone, eq) = (
            bounded(quote!(#p::fmt::Debug)),
            bounded(quote!(#p::Clone)),
            bounded(quote!(#p::PartialEq)),
        );
        let name = ty.unraw().to_string();
        let marker_value = self.marker().map(|(_, value)| value);
        quote! {
            #[automatically_derived]
            #[allow(unused_qualifications)]
            impl #impl_g #p::fmt::Debug for #ty #ty_g where #(#debug,)* {
                fn fmt(&self, f: &mut #p::fmt::Formatter<'_>) -> #p::fmt::Result {
                    f.debug_struct(#name) #( .field(#names, &self.#fid) )* .finish()
                }
            }

            #[automatically_derived]
            #[allow(unused_qualifications)]
            impl #impl_g #p::Clone for #ty #ty_g where #(#clone,)* {
                fn clone(&self) -> Self {
                    #ty { #( #fid: #p::Clone::clone(&self.#fid), )* #marker_value }
                }
            }

            #[automatically_derived]
            #[allow(unused_qualifications)]
            impl #impl_g #p::PartialEq for #ty #ty_g where #(#eq,)* {
                fn eq(&self, other: &Self) -> bool {
                    true #( && self.#fid == other.#fid )*
                }
            }
        }
    }

    /// The body of the cursor's `merge`: one `set` (or, for `Some(None)` on an `Option`
    /// field, one `delete`) per field the patch has.
    fn merge_body(&self) -> TokenStream {
        let p = self.p;
        let steps = self.fields.iter().map(|f| {
            let fid = f.ident;
            let segment = segment(self.cont, f);
            let at = quote!(#p::At { batch, target: #p::Clone::clone(&target), path: #p::Clone::clone(&path).child(#segment) });
            if option_inner(f.ty).is_some() {
                quote! {
                    let batch = match patch.#fid {
                        #p::Some(#p::Some(v)) => #at.set(&v),
                        #p::Some(#p::None) => #at.delete(),
                        #p::None => batch,
                    };
                }
            } else {
                quote! {
                    let batch = match patch.#fid {
                        #p::Some(v) => #at.set(&v),
                        #p::None => batch,
                    };
                }
            }
        });
        quote! {
            let #p::At { batch, target, path } = self.at;
            #(#steps)*
            let _ = (&target, &path);
            batch
        }
    }
}

/// The field's name as serde stores it (`rename`, `rename_all`).
fn segment(cont: &Container<'_>, f: &Field<'_>) -> String {
    match (&f.attrs.serde_rename, cont.attrs.rename_all) {
        (Some(r), _) => r.clone(),
        (None, Some(rule)) => rule.apply_to_field(&f.name),
        (None, None) => f.name.clone(),
    }
}

/// The doc comment of a struct's cursor type.
fn cursor_doc(name: &str) -> String {
    format!(
        "A batch path at a [`{name}`] value: one method per field (named as serde stores it), \
         `set` for the whole value, `merge` of a [`{name}Patch`], and `delete` where the value \
         may be absent.\n\n\
         Generated by `#[derive(StatePath)]`."
    )
}
