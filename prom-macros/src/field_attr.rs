//! `#[prom(...)]` on a struct field: `#[prom(extra)]` marks an intended extra property.

use proc_macro2::Span;
use syn::Attribute;

/// Reads a field's `#[prom(...)]`; `Some(span)` of `extra` when the field is marked.
pub fn extra(attrs: &[Attribute]) -> syn::Result<Option<Span>> {
    let mut out = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("prom")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("extra") {
                out = Some(meta.path.require_ident()?.span());
                Ok(())
            } else {
                Err(meta.error(
                    "unknown `prom` attribute on a field; expected `extra` (marks a property the schema does not declare but allows)",
                ))
            }
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::extra;
    use syn::parse_quote;

    #[test]
    fn reads_extra_and_rejects_the_rest() {
        let marked: syn::Field = parse_quote!(#[prom(extra)] a: u32);
        assert!(extra(&marked.attrs).is_ok_and(|s| s.is_some()));
        let plain: syn::Field = parse_quote!(#[serde(default)] a: u32);
        assert!(extra(&plain.attrs).is_ok_and(|s| s.is_none()));
        let wrong: syn::Field = parse_quote!(#[prom(extar)] a: u32);
        assert!(extra(&wrong.attrs).is_err());
    }
}
