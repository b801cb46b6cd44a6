//! The topology site (`prom-codegen docs`): static HTML pages plus Markdown twins for
//! repositories, rendered with minijinja from templates compiled into the binary.
//!
//! Everything is derived from a spec that linted clean, sorted by name, with no timestamps:
//! the same spec gives byte-identical files, so `--check` can tell a stale site in CI.

mod example;
mod graph;
mod layout;
mod names;
mod pages;
mod schema_table;
mod site;
mod svg;

pub use example::example;
pub use names::file_stem;
pub use schema_table::{Row, rows as schema_rows};
pub use site::{Difference, DifferenceKind, MANIFEST, Site, WriteReport};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value as Context, context};
use prom_spec::spec::Spec;
use std::collections::BTreeMap;

/// Why the site could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocsError {
    /// A template failed to render (a bug in Prom: the templates are compiled in).
    #[error("cannot render `{page}`: {source}")]
    Render {
        /// The page being rendered.
        page: String,
        /// What minijinja said.
        #[source]
        source: minijinja::Error,
    },
    /// Reading or writing the output directory failed.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// `read`, `write`, `remove`, `create`.
        action: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The output path exists but is not a directory.
    #[error("`{0}` is not a directory: point --out at a directory (it is created when missing)")]
    NotADirectory(std::path::PathBuf),
}

const TEMPLATES: [(&str, &str); 7] = [
    ("base.html", include_str!("../../templates/docs/base.html")),
    ("index.html", include_str!("../../templates/docs/index.html")),
    ("topic.html", include_str!("../../templates/docs/topic.html")),
    ("element.html", include_str!("../../templates/docs/element.html")),
    ("index.md", include_str!("../../templates/docs/index.md")),
    ("topic.md", include_str!("../../templates/docs/topic.md")),
    ("element.md", include_str!("../../templates/docs/element.md")),
];

/// The site's stylesheet (no web fonts, no imports: it works offline).
const STYLE: &str = include_str!("../../templates/docs/style.css");

/// Escapes text for Markdown: inline markup, table pipes and line breaks.
fn markdown_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '!' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Text for a Markdown code span: backticks cannot be escaped inside one, so the fence grows.
fn markdown_code(text: &str) -> String {
    let text: String = text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    // A pipe would end a table cell even inside a code span.
    format!("{fence}{pad}{}{pad}{fence}", text.replace('|', "\\|"))
}

fn environment() -> Result<Environment<'static>, DocsError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(
        |name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None },
    );
    env.add_filter("md", |text: String| markdown_escape(&text));
    env.add_filter("mdcode", |text: String| markdown_code(&text));
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|source| DocsError::Render { page: name.to_owned(), source })?;
    }
    Ok(env)
}

fn render(env: &Environment<'_>, template: &str, page: &str, ctx: Context) -> Result<String, DocsError> {
    env.get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|source| DocsError::Render { page: page.to_owned(), source })
}

/// The whole site of `spec`: every file by its path relative to the output directory.
pub fn site(spec: &Spec) -> Result<Site, DocsError> {
    let env = environment()?;
    let graph = graph::build(spec);
    let placed = layout::layout(&graph);
    let mut files = BTreeMap::new();
    files.insert("style.css".to_owned(), STYLE.to_owned());
    files.insert("topology.svg".to_owned(), svg::render(&graph, &placed, "", "md"));
    let svg_html = svg::render(&graph, &placed, "", "html");

    let topics: Vec<pages::TopicPage> = spec.topics.values().map(|t| pages::topic(spec, t)).collect();
    let consumers: Vec<pages::ElementPage> =
        spec.consumers.values().map(|c| pages::consumer(spec, c)).collect();
    let projectors: Vec<pages::ElementPage> =
        spec.projectors.values().map(|p| pages::projector(spec, p)).collect();
    let changefeeds: Vec<pages::ElementPage> =
        spec.changefeeds.values().map(|c| pages::changefeed(spec, c)).collect();
    let aggregates: Vec<pages::ElementPage> =
        spec.aggregates.values().map(|a| pages::aggregate(spec, a)).collect();
    let index_ctx = context! {
        svg => Context::from_safe_string(svg_html),
        topics => topics,
        consumers => consumers,
        projectors => projectors,
        changefeeds => changefeeds,
        aggregates => aggregates,
        nodes => graph.nodes.len(),
        edges => graph.edges.len(),
        root => "",
    };
    files.insert("index.html".to_owned(), render(&env, "index.html", "index.html", index_ctx.clone())?);
    files.insert("index.md".to_owned(), render(&env, "index.md", "index.md", index_ctx)?);
    for topic in &topics {
        let stem = format!("topics/{}", file_stem(&topic.name));
        let ctx = context! { topic => topic, root => "../" };
        files.insert(format!("{stem}.html"), render(&env, "topic.html", &stem, ctx.clone())?);
        files.insert(format!("{stem}.md"), render(&env, "topic.md", &stem, ctx)?);
    }
    for (dir, elements) in [
        ("consumers", &consumers),
        ("projectors", &projectors),
        ("changefeeds", &changefeeds),
        ("aggregates", &aggregates),
    ] {
        for element in elements {
            let stem = format!("{dir}/{}", file_stem(&element.name));
            let ctx = context! { element => element, root => "../" };
            files.insert(format!("{stem}.html"), render(&env, "element.html", &stem, ctx.clone())?);
            files.insert(format!("{stem}.md"), render(&env, "element.md", &stem, ctx)?);
        }
    }
    Ok(Site::new(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_escaped() {
        assert_eq!(markdown_escape("a|b*c_[x](y)\n<b>"), "a\\|b\\*c\\_\\[x\\](y) \\<b\\>");
        assert_eq!(markdown_code("a`b"), "``a`b``");
        assert_eq!(markdown_code("`x"), "`` `x ``");
        assert_eq!(markdown_code("a|b"), "`a\\|b`");
    }
}
