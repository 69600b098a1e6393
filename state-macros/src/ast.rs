//! The derive input as a model: the struct, its fields, and their parsed attributes.

use syn::ext::IdentExt;
use syn::{Attribute, Data, DeriveInput, Fields, Generics, Ident, Type, Visibility};

use crate::attr::{self, ContainerAttrs, Derive, FieldAttrs};
use crate::ctxt::Ctxt;

/// The struct being derived.
pub(crate) struct Container<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) generics: &'a Generics,
    pub(crate) attrs: ContainerAttrs,
    /// `None` for shapes without named fields (enums, tuple and unit structs, unions).
    pub(crate) fields: Option<Vec<Field<'a>>>,
    pub(crate) shape: Shape,
}

/// What kind of item the derive is on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Named,
    Tuple,
    Unit,
    Enum,
    Union,
}

/// One named field.
pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) attrs: FieldAttrs,
    /// The field's `///` docs, forwarded to generated methods.
    pub(crate) docs: Vec<&'a Attribute>,
    /// The field name without `r#`.
    pub(crate) name: String,
}

impl<'a> Container<'a> {
    pub(crate) fn from_ast(cx: &Ctxt, derive: Derive, input: &'a DeriveInput) -> Self {
        let attrs = attr::container(cx, derive, &input.attrs);
        let (shape, fields) = match &input.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(named) => {
                    let fields = named
                        .named
                        .iter()
                        .filter_map(|f| {
                            let ident = f.ident.as_ref()?;
                            Some(Field {
                                ident,
                                ty: &f.ty,
                                attrs: attr::field(cx, derive, &f.attrs),
                                docs: f
                                    .attrs
                                    .iter()
                                    .filter(|a| a.path().is_ident("doc"))
                                    .collect(),
                                name: ident.unraw().to_string(),
                            })
                        })
                        .collect();
                    (Shape::Named, Some(fields))
                }
                Fields::Unnamed(unnamed) => {
                    refuse_state_attrs(
                        cx,
                        unnamed.unnamed.iter().flat_map(|f| &f.attrs),
                        "a tuple field",
                    );
                    (Shape::Tuple, None)
                }
                Fields::Unit => (Shape::Unit, None),
            },
            Data::Enum(e) => {
                refuse_state_attrs(
                    cx,
                    e.variants.iter().flat_map(|v| &v.attrs),
                    "an enum variant",
                );
                let fields = e.variants.iter().flat_map(|v| &v.fields);
                refuse_state_attrs(cx, fields.flat_map(|f| &f.attrs), "a variant's field");
                (Shape::Enum, None)
            }
            Data::Union(_) => (Shape::Union, None),
        };
        Container {
            ident: &input.ident,
            vis: &input.vis,
            generics: &input.generics,
            attrs,
            fields,
            shape,
        }
    }
}

/// The `T` of `Option<T>` (spelled `Option`, `std::option::Option` or `core::option::Option`).
pub(crate) fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(tp) = ty else { return None };
    if tp.qself.is_some() {
        return None;
    }
    let segs: Vec<String> = tp
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let is_option = match segs
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["Option"] => tp.path.leading_colon.is_none(),
        ["std" | "core", "option", "Option"] => true,
        _ => false,
    };
    if !is_option {
        return None;
    }
    let last = tp.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    if args.args.len() != 1 {
        return None;
    }
    match args.args.first() {
        Some(syn::GenericArgument::Type(inner)) => Some(inner),
        _ => None,
    }
}

/// `#[state(...)]` where the derive reads none (the type is stored and updated as a whole): an
/// error on each, rather than an attribute silently ignored.
fn refuse_state_attrs<'a>(cx: &Ctxt, attrs: impl Iterator<Item = &'a Attribute>, place: &str) {
    for attr in attrs.filter(|a| a.path().is_ident("state")) {
        cx.error_spanned_by(
            attr,
            format!(
                "`#[state(...)]` has no meaning on {place}: this type is stored and updated as a whole"
            ),
        );
    }
}
