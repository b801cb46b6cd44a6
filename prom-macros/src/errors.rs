//! Collects every error of one macro call, so all of them are reported together.

use proc_macro2::{Span, TokenStream};

/// Errors gathered while checking one item.
#[derive(Default)]
pub struct Errors {
    all: Option<syn::Error>,
}

impl Errors {
    /// Records an error at `span`.
    pub fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let error = syn::Error::new(span, message);
        match &mut self.all {
            Some(all) => all.combine(error),
            None => self.all = Some(error),
        }
    }

    /// Records an existing syn error.
    pub fn extend(&mut self, error: syn::Error) {
        match &mut self.all {
            Some(all) => all.combine(error),
            None => self.all = Some(error),
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.all.is_none()
    }

    /// Every recorded message (for tests).
    #[cfg(test)]
    pub fn messages(&self) -> Vec<String> {
        self.all.iter().flat_map(|all| all.clone().into_iter().map(|e| e.to_string())).collect()
    }

    /// `compile_error!` invocations for every recorded error.
    pub fn into_tokens(self) -> TokenStream {
        self.all.map(|e| e.to_compile_error()).unwrap_or_default()
    }
}
