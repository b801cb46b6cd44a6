//! Syntax trees built directly, for the bulk of the generated code (payload types, schema
//! constants): formatting needs a `syn` tree, and building one costs a fraction of printing
//! tokens and parsing them back. Everything else is written with `quote!` and parsed.

use super::ident;
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{ToTokens, quote};
use std::cell::RefCell;
use std::collections::HashMap;
use syn::punctuated::Punctuated;

/// Generated code: syntax trees where they are built directly, tokens for the rest. Tokens are
/// parsed only when formatting; macros take everything as tokens.
pub(crate) enum Piece<'a> {
    /// A finished item.
    Item(Box<syn::Item>),
    /// Items as tokens.
    Tokens(TokenStream),
    /// Items whose tokens are a function of `key` alone (many topics share them): formatting
    /// parses them once per key on each worker thread and clones the trees after that.
    Shared {
        /// Everything the tokens depend on.
        key: String,
        /// Builds the tokens.
        tokens: Box<dyn Fn() -> TokenStream + 'a>,
    },
    /// `pub mod name { content }` under `attrs`.
    Module {
        /// Outer attributes (docs, lints).
        attrs: Vec<syn::Attribute>,
        /// The module's name.
        name: Ident,
        /// Its items.
        content: Vec<Piece<'a>>,
    },
}

thread_local! {
    /// Parsed [`Piece::Shared`] items by key. Formatting workers are threads of their own, so
    /// this lives as long as one formatting run.
    static SHARED: RefCell<HashMap<String, Vec<syn::Item>>> = RefCell::new(HashMap::new());
}

impl Piece<'_> {
    /// Appends the piece as tokens (what `include_specs!` expands to).
    pub(crate) fn to_tokens(&self, out: &mut TokenStream) {
        match self {
            Piece::Item(item) => item.to_tokens(out),
            Piece::Tokens(tokens) => out.extend(tokens.clone()),
            Piece::Shared { tokens, .. } => out.extend(tokens()),
            Piece::Module { attrs, name, content } => {
                let mut body = TokenStream::new();
                for piece in content {
                    piece.to_tokens(&mut body);
                }
                out.extend(quote!(#(#attrs)* pub mod #name { #body }));
            }
        }
    }

    /// Appends the piece as syntax trees, parsing its tokens.
    pub(crate) fn into_items(self, out: &mut Vec<syn::Item>) -> syn::Result<()> {
        match self {
            Piece::Item(item) => out.push(*item),
            Piece::Tokens(tokens) => out.extend(syn::parse2::<syn::File>(tokens)?.items),
            Piece::Shared { key, tokens } => {
                let items = match SHARED.with_borrow(|shared| shared.get(&key).cloned()) {
                    Some(items) => items,
                    None => {
                        let items = syn::parse2::<syn::File>(tokens())?.items;
                        SHARED.with_borrow_mut(|shared| shared.insert(key, items.clone()));
                        items
                    }
                };
                out.extend(items);
            }
            Piece::Module { attrs, name, content } => {
                let mut items = Vec::new();
                for piece in content {
                    piece.into_items(&mut items)?;
                }
                out.push(syn::Item::Mod(syn::ItemMod {
                    attrs,
                    vis: public(),
                    unsafety: None,
                    mod_token: Default::default(),
                    ident: name,
                    content: Some((Default::default(), items)),
                    semi: None,
                }));
            }
        }
        Ok(())
    }
}

/// `pub`.
pub(crate) fn public() -> syn::Visibility {
    syn::Visibility::Public(Default::default())
}

/// A path from segment names, with a leading `::` when `global`.
pub(crate) fn path(global: bool, segments: &[&str]) -> syn::Path {
    syn::Path {
        leading_colon: global.then(Default::default),
        segments: segments.iter().map(|s| syn::PathSegment::from(ident(s))).collect(),
    }
}

/// A type from a path.
pub(crate) fn path_type(path: syn::Path) -> syn::Type {
    syn::Type::Path(syn::TypePath { attrs: Vec::new(), qself: None, path })
}

/// A global path type whose last segment takes type arguments (`::std::vec::Vec<T>`).
pub(crate) fn generic_type(segments: &[&str], args: Vec<syn::Type>) -> syn::Type {
    let mut path = path(true, segments);
    if let Some(last) = path.segments.last_mut() {
        last.arguments = syn::PathArguments::AngleBracketed(syn::AngleBracketedGenericArguments {
            colon2_token: None,
            lt_token: Default::default(),
            args: args.into_iter().map(syn::GenericArgument::Type).collect(),
            gt_token: Default::default(),
        });
    }
    path_type(path)
}

/// `&str`.
pub(crate) fn str_ref() -> syn::Type {
    syn::Type::Reference(syn::TypeReference {
        attrs: Vec::new(),
        and_token: Default::default(),
        lifetime: None,
        mutability: None,
        elem: Box::new(path_type(path(false, &["str"]))),
    })
}

/// A literal expression.
pub(crate) fn lit_expr(lit: syn::Lit) -> syn::Expr {
    syn::Expr::Lit(syn::ExprLit { attrs: Vec::new(), lit })
}

/// A string literal.
pub(crate) fn lit_str(text: &str) -> syn::Lit {
    syn::Lit::Str(syn::LitStr::new(text, Span::call_site()))
}

/// A literal from its source text (`r#"..."#`), or a plain string literal of `text` when the
/// source is not a literal.
pub(crate) fn lit_source(source: &str, text: &str) -> syn::Lit {
    source.parse::<Literal>().map_or_else(|_| lit_str(text), syn::Lit::new)
}

/// `#[doc = "..."]`.
pub(crate) fn doc(text: &str) -> syn::Attribute {
    attr(syn::Meta::NameValue(syn::MetaNameValue {
        path: path(false, &["doc"]),
        eq_token: Default::default(),
        value: lit_expr(lit_str(text)),
    }))
}

/// `#[doc]` lines for a description, as [`super::docs`] writes them.
pub(crate) fn docs(text: &str) -> impl Iterator<Item = syn::Attribute> + '_ {
    text.lines().map(|line| doc(&format!(" {}", line.trim_end())))
}

/// `#[name(tokens)]`.
pub(crate) fn list_attr(name: &str, tokens: TokenStream) -> syn::Attribute {
    attr(syn::Meta::List(syn::MetaList {
        path: path(false, &[name]),
        delimiter: syn::MacroDelimiter::Paren(Default::default()),
        tokens,
    }))
}

fn attr(meta: syn::Meta) -> syn::Attribute {
    syn::Attribute {
        pound_token: Default::default(),
        style: syn::AttrStyle::Outer,
        bracket_token: Default::default(),
        meta,
    }
}

/// `#attrs pub const NAME: ty = expr;`
pub(crate) fn constant(attrs: Vec<syn::Attribute>, name: Ident, ty: syn::Type, expr: syn::Expr) -> syn::Item {
    syn::Item::Const(syn::ItemConst {
        attrs,
        vis: public(),
        modifiers: Default::default(),
        const_token: Default::default(),
        ident: name,
        generics: Default::default(),
        colon_token: Default::default(),
        ty: Box::new(ty),
        eq_token: Default::default(),
        expr: Box::new(expr),
        semi_token: Default::default(),
    })
}

/// `#attrs pub struct Name { fields }`.
pub(crate) fn structure(attrs: Vec<syn::Attribute>, name: Ident, fields: Vec<syn::Field>) -> syn::Item {
    syn::Item::Struct(syn::ItemStruct {
        attrs,
        vis: public(),
        struct_token: Default::default(),
        ident: name,
        generics: Default::default(),
        fields: syn::Fields::Named(syn::FieldsNamed {
            brace_token: Default::default(),
            named: fields.into_iter().collect(),
        }),
        semi_token: None,
    })
}

/// `#attrs pub name: ty`.
pub(crate) fn field(attrs: Vec<syn::Attribute>, name: Ident, ty: syn::Type) -> syn::Field {
    syn::Field {
        attrs,
        vis: public(),
        modifiers: Default::default(),
        ident: Some(name),
        colon_token: Some(Default::default()),
        ty,
        default: None,
    }
}

/// `#attrs pub enum Name { variants }` of unit variants.
pub(crate) fn enumeration(
    attrs: Vec<syn::Attribute>,
    name: Ident,
    variants: impl IntoIterator<Item = (Vec<syn::Attribute>, Ident)>,
) -> syn::Item {
    let variants: Punctuated<syn::Variant, syn::Token![,]> = variants
        .into_iter()
        .map(|(attrs, ident)| syn::Variant { attrs, ident, fields: syn::Fields::Unit, discriminant: None })
        .collect();
    syn::Item::Enum(syn::ItemEnum {
        attrs,
        vis: public(),
        enum_token: Default::default(),
        ident: name,
        generics: Default::default(),
        brace_token: Default::default(),
        variants,
    })
}
