//! Collects every error found while parsing and checking, so all are reported at once.

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;

/// The error collector of one derive invocation.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
    /// Errors after which the normal expansion still makes sense (the offending part left
    /// out), so that the user's other code meets the real generated items, not a fallback.
    recoverable: RefCell<Vec<syn::Error>>,
}

impl Ctxt {
    /// Records an error spanning `tokens`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&self, tokens: T, msg: M) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new_spanned(tokens.into_token_stream(), msg));
    }

    /// Records an error spanning `tokens` that the expansion can go on after.
    pub(crate) fn recoverable_spanned_by<T: ToTokens, M: Display>(&self, tokens: T, msg: M) {
        self.recoverable
            .borrow_mut()
            .push(syn::Error::new_spanned(tokens.into_token_stream(), msg));
    }

    /// Records a parse error as it is.
    pub(crate) fn syn_error(&self, err: syn::Error) {
        self.errors.borrow_mut().push(err);
    }

    /// `Ok` with the recoverable errors (if any) when there is no other; else every error.
    /// Each keeps its span.
    pub(crate) fn check(self) -> Result<Option<syn::Error>, syn::Error> {
        let recoverable = combine(self.recoverable.into_inner());
        match (combine(self.errors.into_inner()), recoverable) {
            (None, recoverable) => Ok(recoverable),
            (Some(mut errors), Some(recoverable)) => {
                errors.combine(recoverable);
                Err(errors)
            }
            (Some(errors), None) => Err(errors),
        }
    }
}

/// The errors combined into one, if any.
fn combine(errors: Vec<syn::Error>) -> Option<syn::Error> {
    let mut errors = errors.into_iter();
    let mut combined = errors.next()?;
    for rest in errors {
        combined.combine(rest);
    }
    Some(combined)
}
