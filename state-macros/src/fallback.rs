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
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
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
        #[allow(unused_qualifications, clippy::all)]
        const _: () = {
            impl #impl_g #p::StateScope for #ident #ty_g #where_c {
                type State<M: #p::Mode> = #p::Fallback<M>;
                const NAMESPACE: &'static str = #name;
                fn bind<M: #p::Mode>(_: &#p::Context) -> #p::StateResult<Self::State<M>> {
                    #p::fallback()
                }
            }
        };
    }
}

pub(crate) fn state_path(input: &DeriveInput, krate: &syn::Path) -> TokenStream {
    let p = quote!(#krate::__private);
    let ident = &input.ident;
    let mut with_b = input.generics.clone();
    with_b.params.push(syn::parse_quote!(B));
    let (impl_b, _, _) = with_b.split_for_impl();
    let (_, ty_g, where_c) = input.generics.split_for_impl();
    quote! {
        #[allow(unused_qualifications, clippy::all)]
        const _: () = {
            impl #impl_b #p::PathTarget<B> for #ident #ty_g #where_c {
                type Cursor<D> = #p::Cursor<Self, B, D>;
                fn cursor<D>(at: #p::At<B>) -> Self::Cursor<D> {
                    #p::Cursor::new(at)
                }
            }
        };
    }
}
