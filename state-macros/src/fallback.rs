//! What a derive emits beside its errors: minimal impls so that code using the type does not
//! drown the real errors in follow-on ones (`StateScope` is not implemented, …).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::DeriveInput;
use syn::ext::IdentExt;

pub(crate) fn state_scope(input: &DeriveInput, krate: &syn::Path) -> TokenStream {
    let p = quote!(#krate::__private);
    let ident = &input.ident;
    let name = ident.unraw().to_string();
    let vis = &input.vis;
    let (impl_g, ty_g, _) = input.generics.split_for_impl();
    // Types with lifetime or const parameters get no stand-in impl: it would only add errors.
    let plain = input.generics.lifetimes().next().is_none()
        && input.generics.const_params().next().is_none();
    let statics = input.generics.type_params().map(|t| {
        let t = &t.ident;
        quote!(#t: 'static)
    });
    let preds = input
        .generics
        .where_clause
        .iter()
        .flat_map(|w| w.predicates.iter());
    let impl_ = plain.then(|| {
        quote! {
            #[allow(unused_qualifications, clippy::all)]
            const _: () = {
                impl #impl_g #p::StateScope for #ident #ty_g where #(#preds,)* #(#statics,)* {
                    type State<M: #p::Mode> = #p::Fallback<M>;
                    const NAMESPACE: &'static str = #name;
                    const FIELDS: &'static [(&'static str, #p::FieldScope)] = &[];
                    fn bind<M: #p::Mode>(_: &#p::Context) -> #p::StateResult<Self::State<M>> {
                        #p::fallback()
                    }
                }
            };
        }
    });
    let aliases = ["State", "View", "Snapshot", "Batch"].map(|suffix| {
        let alias = format_ident!("{}{}", name, suffix, span = ident.span());
        let doc = format!("Not generated: `#[derive(StateScope)]` on `{name}` has errors.");
        quote! {
            #[doc = #doc]
            #[allow(dead_code, unused_qualifications)]
            #vis type #alias<M = #p::ReadWrite> = #p::Fallback<M>;
        }
    });
    quote! {
        #(#aliases)*
        #impl_
    }
}

pub(crate) fn state_path(input: &DeriveInput, krate: &syn::Path) -> TokenStream {
    let p = quote!(#krate::__private);
    let ident = &input.ident;
    let used = crate::bound::idents_in(quote::ToTokens::to_token_stream(input));
    let b = crate::bound::fresh(&input.generics, &used, "B");
    let d = crate::bound::fresh(&input.generics, &used, "D");
    let mut with_b = input.generics.clone();
    with_b.params.push(syn::parse_quote!(#b));
    let (impl_b, _, _) = with_b.split_for_impl();
    let (_, ty_g, where_c) = input.generics.split_for_impl();
    if input.generics.lifetimes().next().is_some() || input.generics.const_params().next().is_some()
    {
        return quote!();
    }
    quote! {
        #[allow(unused_qualifications, clippy::all)]
        const _: () = {
            impl #impl_b #p::PathTarget<#b> for #ident #ty_g #where_c {
                type Cursor<#d> = #p::Cursor<Self, #b, #d>;
                fn cursor<#d>(at: #p::At<#b>) -> Self::Cursor<#d> {
                    #p::Cursor::new(at)
                }
            }
        };
    }
}
