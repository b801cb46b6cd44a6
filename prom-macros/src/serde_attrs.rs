//! The serde attributes that change a struct's JSON shape: renames, defaults, skips, flatten.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr, Token};

/// Container-level serde settings.
#[derive(Default)]
pub struct Container {
    /// `rename_all = "..."` (deserialize side).
    pub rename_all: Option<String>,
    /// `default` on the struct: every missing field takes its default.
    pub default: bool,
}

/// Field-level serde settings.
#[derive(Default)]
pub struct FieldAttrs {
    /// `rename = "..."` (deserialize side).
    pub rename: Option<String>,
    /// `default` or `default = "path"`.
    pub default: bool,
    /// `skip` or `skip_deserializing`: not part of the payload.
    pub skip: bool,
    /// `flatten`: the field's own fields are inlined; its contents cannot be checked here.
    pub flatten: bool,
    /// `skip_serializing_if = "..."` or `skip_serializing`: `None` need not be written as null.
    pub skip_serializing_if: bool,
}

/// Reads `#[serde(...)]` on a struct.
pub fn container(attrs: &[Attribute]) -> syn::Result<Container> {
    let mut out = Container::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename_all") {
                out.rename_all = Some(name_value(&meta)?);
            } else if meta.path.is_ident("default") {
                out.default = true;
                skip_value(&meta)?;
            } else {
                skip_value(&meta)?;
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// Reads `#[serde(...)]` on a field.
pub fn field(attrs: &[Attribute]) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                out.rename = Some(name_value(&meta)?);
            } else if meta.path.is_ident("default") {
                out.default = true;
                skip_value(&meta)?;
            } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_deserializing") {
                out.skip = true;
            } else if meta.path.is_ident("flatten") {
                out.flatten = true;
            } else if meta.path.is_ident("skip_serializing_if") || meta.path.is_ident("skip_serializing") {
                out.skip_serializing_if = true;
                skip_value(&meta)?;
            } else {
                skip_value(&meta)?;
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// `key = "x"` or `key(serialize = "a", deserialize = "x")`: the name payloads are read with.
fn name_value(meta: &ParseNestedMeta<'_>) -> syn::Result<String> {
    if meta.input.peek(Token![=]) {
        return Ok(meta.value()?.parse::<LitStr>()?.value());
    }
    let mut deserialize = None;
    meta.parse_nested_meta(|inner| {
        let value = inner.value()?.parse::<LitStr>()?.value();
        if inner.path.is_ident("deserialize") {
            deserialize = Some(value);
        }
        Ok(())
    })?;
    deserialize.ok_or_else(|| meta.error("expected `= \"name\"` or `(deserialize = \"name\")`"))
}

/// Consumes whatever follows an attribute we do not interpret.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

/// Applies a serde `rename_all` rule to a snake_case field name, as serde does.
pub fn apply_rename_all(rule: &str, field: &str) -> Option<String> {
    let pascal = || {
        field
            .split('_')
            .map(|w| {
                let mut chars = w.chars();
                chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            })
            .collect::<String>()
    };
    Some(match rule {
        "lowercase" | "snake_case" => field.to_owned(),
        "UPPERCASE" | "SCREAMING_SNAKE_CASE" => field.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let p = pascal();
            let mut chars = p.chars();
            chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
        }
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.to_ascii_uppercase().replace('_', "-"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::apply_rename_all;

    #[test]
    fn rename_rules() {
        assert_eq!(apply_rename_all("camelCase", "mem_mib").as_deref(), Some("memMib"));
        assert_eq!(apply_rename_all("PascalCase", "mem_mib").as_deref(), Some("MemMib"));
        assert_eq!(apply_rename_all("kebab-case", "mem_mib").as_deref(), Some("mem-mib"));
        assert_eq!(apply_rename_all("SCREAMING_SNAKE_CASE", "mem_mib").as_deref(), Some("MEM_MIB"));
        assert_eq!(apply_rename_all("nonsense", "x"), None);
    }
}
