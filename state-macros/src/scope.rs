//! Expansion of `#[derive(StateScope)]`: four items beside the struct (`{Name}State`, its
//! read-only alias `{Name}View`, `{Name}Snapshot` and `{Name}Batch`), their methods, and the
//! `StateScope` impl that binds every field to its slot.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, WherePredicate, parse_quote};

use crate::ast::{Container, Field, option_inner};
use crate::attr::ScopeName;
use crate::bound;

/// One stored field, classified.
struct Stored<'a> {
    f: &'a Field<'a>,
    /// The slot's value type: `U` for an `Option<U>` field, else the field type.
    value_ty: &'a syn::Type,
    optional: bool,
    scope: ScopeName,
    key: String,
}

/// What every generated item shares: the names, the generics and the stored fields.
struct Gen<'a> {
    cont: &'a Container<'a>,
    /// `krate::__private`, the only path generated code names.
    p: TokenStream,
    ident: &'a Ident,
    name: String,
    vis: &'a syn::Visibility,
    stored: Vec<Stored<'a>>,
    skipped: Vec<&'a Field<'a>>,
    state: Ident,
    view: Ident,
    snapshot: Ident,
    batch: Ident,
    /// The mode parameter (`ReadWrite` / `ReadOnly`), named apart from the user's.
    m: Ident,
    /// The user's parameters as declared, as an alias declares them, and as arguments.
    decl: TokenStream,
    alias: TokenStream,
    args: TokenStream,
    /// The bounds every impl carries.
    preds: Vec<WherePredicate>,
    /// `PhantomData` of the user's parameters.
    marker: TokenStream,
    /// The impl generics with and without the mode parameter.
    impl_m: TokenStream,
    impl_plain: TokenStream,
    /// The struct's type arguments, for `Self` types.
    user_ty: TokenStream,
}

/// The doc lines of a generated accessor: the field's own docs, or a sentence.
fn field_docs(f: &Field<'_>, fallback: String) -> TokenStream {
    if f.docs.is_empty() {
        quote!(#[doc = #fallback])
    } else {
        let docs = &f.docs;
        quote!(#(#docs)*)
    }
}

pub(crate) fn expand(cont: &Container<'_>, krate: &syn::Path) -> TokenStream {
    let g = Gen::new(cont, krate);
    let items = g.items();
    let state_impl = g.state_impl();
    let snapshot_impl = g.snapshot_impl();
    let batch_impl = g.batch_impl();
    let trait_impls = g.trait_impls();
    // Inherent impls stay outside the `const _` block: an error about a bound on their
    // methods then names `{Name}State::<M>::batch`, not `_::<impl {Name}State<M>>::batch`.
    quote! {
        #items

        #[allow(unused_qualifications, clippy::all)]
        #state_impl
        #[allow(unused_qualifications, clippy::all)]
        #snapshot_impl
        #[allow(unused_qualifications, clippy::all)]
        #batch_impl

        #[allow(unused_qualifications, clippy::all)]
        const _: () = {
            #trait_impls
        };
    }
}

impl<'a> Gen<'a> {
    fn new(cont: &'a Container<'a>, krate: &syn::Path) -> Self {
        let p = quote!(#krate::__private);
        let ident = cont.ident;
        let name = ident.unraw().to_string();
        let fields: &'a [Field<'a>] = cont.fields.as_deref().unwrap_or_default();
        let struct_scope = cont.attrs.scope.as_ref().map(|s| s.value);
        let stored: Vec<Stored<'a>> = fields
            .iter()
            .filter(|f| !f.attrs.skip)
            .map(|f| Stored {
                f,
                value_ty: option_inner(f.ty).unwrap_or(f.ty),
                optional: option_inner(f.ty).is_some(),
                scope: f
                    .attrs
                    .scope
                    .as_ref()
                    .map(|s| s.value)
                    .or(struct_scope)
                    .unwrap_or(ScopeName::Execution),
                key: f
                    .attrs
                    .rename
                    .as_ref()
                    .map_or_else(|| f.name.clone(), |r| r.value.clone()),
            })
            .collect();
        let preds = Self::predicates(cont, &stored, &p);
        let m = bound::fresh(cont.generics, &bound::used_names(cont), "M");
        let with_m = bound::with_param(cont.generics, parse_quote!(#m: #p::Mode));
        let (impl_m, _, _) = with_m.split_for_impl();
        let (impl_plain, user_ty, _) = cont.generics.split_for_impl();
        let named = |suffix: &str| format_ident!("{}{}", name, suffix, span = ident.span());
        Gen {
            cont,
            ident,
            vis: cont.vis,
            stored,
            skipped: fields.iter().filter(|f| f.attrs.skip).collect(),
            state: named("State"),
            view: named("View"),
            snapshot: named("Snapshot"),
            batch: named("Batch"),
            decl: bound::decl_params(cont),
            alias: bound::alias_params(cont),
            args: bound::args(cont),
            preds,
            marker: bound::marker_ty(cont, &p, None),
            impl_m: quote!(#impl_m),
            impl_plain: quote!(#impl_plain),
            user_ty: quote!(#user_ty),
            m,
            name,
            p,
        }
    }

    /// Every generated impl's where-predicates: the struct's own (see [`bound::predicates`]),
    /// and each concrete field type's serde bounds as a higher-ranked predicate. A field type
    /// that is not `Serialize` is then reported once, by serde's derives, instead of by every
    /// generated method that needs it (a `for<'_>` predicate is not a trivial bound: when it
    /// does not hold, the impl simply does not apply).
    fn predicates(
        cont: &Container<'_>,
        stored: &[Stored<'_>],
        p: &TokenStream,
    ) -> Vec<WherePredicate> {
        let mut preds = bound::predicates(cont, p);
        let params = bound::type_params(cont);
        for s in stored {
            let ty = s.value_ty;
            if !bound::mentions_param(ty, &params) {
                preds.push(parse_quote!(
                    for<'__state> #ty: #p::Serialize + #p::DeserializeOwned
                ));
            }
        }
        preds
    }

    fn fids(&self) -> Vec<&'a Ident> {
        self.stored.iter().map(|s| s.f.ident).collect()
    }

    /// A field's handle type in the state struct: synchronous for session fields.
    fn handle_ty(&self, s: &Stored<'_>) -> TokenStream {
        let (p, m, ty) = (&self.p, &self.m, s.value_ty);
        if s.scope == ScopeName::Session {
            quote!(#p::SessionHandle<#ty, #m>)
        } else {
            quote!(#p::SlotHandle<#ty, #m>)
        }
    }

    /// The four generated types, with their docs.
    fn items(&self) -> TokenStream {
        let Gen {
            p,
            name,
            vis,
            state,
            view,
            snapshot,
            batch,
            m,
            decl,
            alias,
            args,
            marker,
            ..
        } = self;
        let user_where = &self.cont.generics.where_clause;
        let fid = self.fids();
        let vty: Vec<&syn::Type> = self.stored.iter().map(|s| s.value_ty).collect();
        let handles: Vec<TokenStream> = self.stored.iter().map(|s| self.handle_ty(s)).collect();
        let state_doc = format!(
            "Typed state handles of [`{name}`]: one handle per field, each bound to its slot.\n\n\
             Generated by `#[derive(StateScope)]`; get one with `ctx.state::<{name}>()` (or \
             `ctx.view::<{name}>()` for the read-only [`{name}View`])."
        );
        let view_doc = format!(
            "Read-only state of [`{name}`], for shared handlers: its handles have no mutating method."
        );
        let snapshot_doc = format!(
            "Every field of [`{name}`] loaded in one store call: eager handles that read the loaded \
             records, are refreshed by every commit made through them, and convert into \
             [`{name}`] with `to_value`."
        );
        let batch_doc = format!(
            "A path-checked atomic batch over the fields of [`{name}`]: each field and each nested \
             path is a method, each op is checked against the type at its path, and the whole batch \
             commits at once."
        );
        quote! {
            #[doc = #state_doc]
            #[allow(unused_qualifications)]
            #vis struct #state<#decl #m = #p::ReadWrite> #user_where {
                #( #fid: #handles, )*
                __state_marker: #marker,
            }

            #[doc = #view_doc]
            #[allow(unused_qualifications)]
            #vis type #view<#alias> = #state<#args #p::ReadOnly>;

            #[doc = #snapshot_doc]
            #[allow(unused_qualifications)]
            #vis struct #snapshot<#decl #m = #p::ReadWrite> #user_where {
                #( #fid: #p::SlotHandle<#vty, #m>, )*
                __state_marker: #marker,
            }

            #[doc = #batch_doc]
            #[must_use = "a batch does nothing until it is returned to `batch` and awaited"]
            #[allow(unused_qualifications)]
            #vis struct #batch<#decl> #user_where {
                __batch: #p::BatchBuilder,
                #( #fid: #p::WriteTarget, )*
                __state_marker: #marker,
            }
        }
    }

    /// An accessor returning `&ret`, documented with the field's docs.
    fn accessor(&self, s: &Stored<'_>, ret: TokenStream) -> TokenStream {
        let (vis, f) = (self.vis, s.f.ident);
        let docs = field_docs(s.f, format!("The handle of the `{}` field.", s.f.name));
        quote! {
            #docs
            #[inline]
            #vis fn #f(&self) -> &#ret {
                &self.#f
            }
        }
    }

    /// The `batch` method of the state and of the snapshot.
    fn batch_fn(&self) -> TokenStream {
        let Gen {
            p,
            vis,
            batch,
            m,
            args,
            ..
        } = self;
        let fid = self.fids();
        quote! {
            #vis fn batch<F>(&self, f: F) -> #p::BatchCommit
            where
                F: #p::FnOnce(#batch<#args>) -> #batch<#args>,
                #m: #p::CanWrite,
            {
                let __b = f(#batch {
                    __batch: #p::BatchBuilder::new(),
                    #( #fid: #p::Clone::clone(self.#fid.target()), )*
                    __state_marker: #p::PhantomData,
                });
                __b.__batch.commit_boxed()
            }
        }
    }

    /// The state's accessors, `load`, `read_only` and `batch`.
    fn state_impl(&self) -> TokenStream {
        let Gen {
            p,
            vis,
            state,
            snapshot,
            m,
            args,
            preds,
            impl_m,
            ..
        } = self;
        let fid = self.fids();
        let accessors = self
            .stored
            .iter()
            .map(|s| self.accessor(s, self.handle_ty(s)));
        let batch_fn = self.batch_fn();
        quote! {
            impl #impl_m #state<#args #m> where #(#preds,)* {
                #(#accessors)*

                /// Loads every field in one store call into an eager snapshot.
                #vis async fn load(&self) -> #p::StateResult<#snapshot<#args #m>> {
                    let __records = #p::load_targets(&[ #( #p::AsSlot::as_slot(&self.#fid).target(), )* ]).await?;
                    let mut __records = #p::IntoIterator::into_iter(__records);
                    #p::Ok(#snapshot {
                        #( #fid: #p::AsSlot::as_slot(&self.#fid).eager(#p::Option::unwrap_or_default(#p::Iterator::next(&mut __records))), )*
                        __state_marker: #p::PhantomData,
                    })
                }

                /// The same state, read-only (for a shared handler).
                #vis fn read_only(&self) -> #state<#args #p::ReadOnly> {
                    #state { #( #fid: self.#fid.read_only(), )* __state_marker: #p::PhantomData }
                }

                /// Builds a path-checked batch with `f` and commits it atomically: every op
                /// applies, or none does.
                #batch_fn
            }
        }
    }

    /// The snapshot's accessors, `to_value`, `read_only` and `batch`.
    fn snapshot_impl(&self) -> TokenStream {
        let Gen {
            p,
            vis,
            ident,
            snapshot,
            m,
            args,
            preds,
            impl_m,
            user_ty,
            ..
        } = self;
        let fid = self.fids();
        let accessors = self.stored.iter().map(|s| {
            let ty = s.value_ty;
            self.accessor(s, quote!(#p::SlotHandle<#ty, #m>))
        });
        let default_value = self
            .cont
            .attrs
            .default
            .then(|| quote!(let __default: #ident #user_ty = #p::Default::default();));
        let to_fields = self.to_fields();
        let batch_fn = self.batch_fn();
        quote! {
            impl #impl_m #snapshot<#args #m> where #(#preds,)* {
                #(#accessors)*

                /// The loaded values as the struct. A required field without a value (never
                /// written and no `initial`, or deleted, and no `#[state(default)]`) is an error.
                #vis fn to_value(&self) -> #p::StateResult<#ident #user_ty> {
                    #default_value
                    #p::Ok(#ident { #(#to_fields)* })
                }

                /// The same snapshot, read-only.
                #vis fn read_only(&self) -> #snapshot<#args #p::ReadOnly> {
                    #snapshot { #( #fid: self.#fid.read_only(), )* __state_marker: #p::PhantomData }
                }

                /// A batch committed through the snapshot (its records are refreshed): every
                /// op applies, or none does.
                #batch_fn
            }
        }
    }

    /// Each field of the struct from the snapshot: its loaded value, its default, or an error
    /// for a required field without one; a skipped field is its default.
    fn to_fields(&self) -> Vec<TokenStream> {
        let p = &self.p;
        let container_default = self.cont.attrs.default;
        let stored = self.stored.iter().map(|s| {
            let f = s.f.ident;
            let span = s.f.ty.span();
            let value = if s.optional {
                quote!(#p::snapshot_optional(&self.#f)?)
            } else if s.f.attrs.default {
                quote_spanned!(span=> #p::snapshot_or(&self.#f, #p::Default::default)?)
            } else if container_default {
                quote!(#p::snapshot_or(&self.#f, || __default.#f)?)
            } else {
                quote!(#p::snapshot_required(&self.#f)?)
            };
            quote!(#f: #value,)
        });
        let skipped = self.skipped.iter().map(|f| {
            let id = f.ident;
            let span = f.ty.span();
            if container_default {
                quote!(#id: __default.#id,)
            } else {
                quote_spanned!(span=> #id: #p::Default::default(),)
            }
        });
        stored.chain(skipped).collect()
    }

    /// The batch's field cursors: a leaf field's cursor, or the field type's own paths.
    fn batch_impl(&self) -> TokenStream {
        let Gen {
            p,
            vis,
            batch,
            args,
            impl_plain,
            ..
        } = self;
        let params = bound::type_params(self.cont);
        let mut preds = self.preds.clone();
        let self_ty = quote!(#batch<#args>);
        let cursors: Vec<TokenStream> = self
            .stored
            .iter()
            .map(|s| {
                let (f, ty) = (s.f.ident, s.value_ty);
                let span = ty.span();
                let docs = field_docs(s.f, format!("The `{}` field, as a batch path.", s.f.name));
                let (ret, make) = if s.f.attrs.leaf {
                    (
                        quote_spanned!(span=> #p::Cursor<#ty, #self_ty, #p::Deletable>),
                        quote!(#p::Cursor::new),
                    )
                } else {
                    if bound::mentions_param(ty, &params) {
                        preds.push(parse_quote!(#ty: #p::PathTarget<#self_ty>));
                    }
                    (
                        quote_spanned!(span=> <#ty as #p::PathTarget<#self_ty>>::Cursor<#p::Deletable>),
                        quote_spanned!(span=> <#ty as #p::PathTarget<#self_ty>>::cursor::<#p::Deletable>),
                    )
                };
                let probed = !s.f.attrs.leaf && params.is_empty();
                let paths = probed.then(|| quote!(where for<'__state> #ty: #p::PathTarget<#self_ty>));
                let body = quote_spanned! {span=>
                    let target = #p::Clone::clone(&self.#f);
                    #make(#p::At { batch: self, target, path: #p::Path::root() })
                };
                quote! {
                    #docs
                    #vis fn #f(self) -> #ret #paths {
                        #body
                    }
                }
            })
            .collect();
        let probes = self.path_probes();
        quote! {
            impl #impl_plain #batch<#args> where #(#preds,)* {
                #(#cursors)*
            }
            #probes
        }
    }

    /// For a struct without type parameters, each non-leaf field's cursor method requires
    /// its type's paths only as a higher-ranked bound (so a type that is not `Serialize`,
    /// which serde's derives report, is not reported again here); these probes report a
    /// serializable type without paths, once, on the field's type.
    fn path_probes(&self) -> TokenStream {
        let Gen { p, batch, .. } = self;
        if !bound::type_params(self.cont).is_empty() {
            return TokenStream::new();
        }
        let calls = self.stored.iter().filter(|s| !s.f.attrs.leaf).map(|s| {
            let ty = s.value_ty;
            quote_spanned! {ty.span()=>
                (&&&#p::FieldProbe::<#ty, #batch>(#p::PhantomData)).check_field_paths();
            }
        });
        quote! {
            const _: () = {
                #[allow(unused_imports)]
                use #p::{AnyField as _, FieldWithPaths as _, SerializableField as _};
                #[allow(dead_code)]
                fn probe_paths() {
                    #(#calls)*
                }
            };
        }
    }

    /// `Clone` for the state and the snapshot, snapshot → struct, the batch's sink, and the
    /// `StateScope` impl itself.
    fn trait_impls(&self) -> TokenStream {
        let Gen {
            p,
            ident,
            state,
            snapshot,
            batch,
            m,
            args,
            preds,
            impl_m,
            impl_plain,
            user_ty,
            ..
        } = self;
        let fid = self.fids();
        let binds = self.binds();
        let fields = self.stored.iter().map(|s| {
            let (key, scope) = (&s.key, Ident::new(s.scope.variant(), Span::call_site()));
            quote!((#key, #p::FieldScope::#scope))
        });
        let namespace = self
            .cont
            .attrs
            .namespace
            .as_ref()
            .map_or_else(|| self.name.clone(), |n| n.value.clone());
        quote! {
            #[automatically_derived]
            impl #impl_m #p::Clone for #state<#args #m> where #(#preds,)* {
                fn clone(&self) -> Self {
                    #state { #( #fid: #p::Clone::clone(&self.#fid), )* __state_marker: #p::PhantomData }
                }
            }

            #[automatically_derived]
            impl #impl_m #p::Clone for #snapshot<#args #m> where #(#preds,)* {
                fn clone(&self) -> Self {
                    #snapshot { #( #fid: #p::Clone::clone(&self.#fid), )* __state_marker: #p::PhantomData }
                }
            }

            #[automatically_derived]
            impl #impl_m #p::TryFrom<#snapshot<#args #m>> for #ident #user_ty where #(#preds,)* {
                type Error = #p::Error;
                fn try_from(snapshot: #snapshot<#args #m>) -> #p::StateResult<Self> {
                    snapshot.to_value()
                }
            }

            #[automatically_derived]
            impl #impl_plain #p::BatchSink for #batch<#args> where #(#preds,)* {
                fn push(mut self, target: &#p::WriteTarget, op: #p::StateResult<#p::Op>) -> Self {
                    self.__batch = #p::BatchSink::push(self.__batch, target, op);
                    self
                }
            }

            #[automatically_derived]
            impl #impl_plain #p::StateScope for #ident #user_ty where #(#preds,)* {
                type State<#m: #p::Mode> = #state<#args #m>;
                const NAMESPACE: &'static str = #namespace;
                const FIELDS: &'static [(&'static str, #p::FieldScope)] = &[#(#fields),*];
                fn bind<#m: #p::Mode>(ctx: &#p::Context) -> #p::StateResult<Self::State<#m>> {
                    #p::Ok(#state { #(#binds)* __state_marker: #p::PhantomData })
                }
            }
        }
    }

    /// Each field bound to its slot in its scope, with its initial value and TTL.
    fn binds(&self) -> Vec<TokenStream> {
        let Gen { p, m, name, .. } = self;
        self.stored
            .iter()
            .map(|s| {
                let (f, ty, key, field_name) = (s.f.ident, s.value_ty, &s.key, &s.f.name);
                let initial = s.f.attrs.initial.as_ref().map(|e| {
                    let span = e.span();
                    quote_spanned! {span=>
                        .with_initial(&{
                            let __initial: #ty = #e;
                            __initial
                        })?
                    }
                });
                let ttl = s.f.attrs.ttl_ms.map(|ms| {
                    quote!(.with_ttl(#p::Ttl::For(#p::Duration::from_millis(#ms))))
                });
                let retries = (s.scope != ScopeName::Session)
                    .then(|| s.f.attrs.max_retries.or(self.cont.attrs.max_retries))
                    .flatten()
                    .map(|n| quote!(.with_max_retries(#n)));
                let bind = if s.scope == ScopeName::Session {
                    quote!(#p::bind_session::<#ty, #m>(
                        ctx, <Self as #p::StateScope>::NAMESPACE, #key, #name, #field_name,
                    ))
                } else {
                    let scope = Ident::new(s.scope.variant(), Span::call_site());
                    quote!(#p::bind_field::<#ty, #m>(
                        ctx, #p::FieldScope::#scope, <Self as #p::StateScope>::NAMESPACE, #key, #name, #field_name,
                    ))
                };
                quote! {
                    #f: #bind? #initial #ttl #retries,
                }
            })
            .collect()
    }
}
