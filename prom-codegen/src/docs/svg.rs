//! The topology graph as inline SVG: boxes linked to their pages, curved arrows, a legend.

use super::graph::{Graph, Kind};
use super::layout::{self, Layout, NODE_HEIGHT};
use std::fmt::Write as _;

/// Escapes text for XML content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0; show them as U+FFFD.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Fill and stroke of a kind's boxes.
fn colours(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Topic => ("#e3f2fd", "#1565c0"),
        Kind::DualWrite => ("#f3f8fd", "#5c8dbf"),
        Kind::Dlq => ("#fdecea", "#c62828"),
        Kind::Consumer => ("#e8f5e9", "#2e7d32"),
        Kind::Projector => ("#fff8e1", "#e08a00"),
        Kind::Collection => ("#f3e5f5", "#6a1b9a"),
        Kind::Changefeed => ("#e0f7fa", "#00838f"),
        Kind::Aggregate => ("#fbe9e7", "#bf360c"),
    }
}

fn fmt(value: f64) -> String {
    // One decimal is plenty on screen, and keeps the output stable across platforms.
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 { format!("{}", rounded as i64) } else { format!("{rounded:.1}") }
}

/// The SVG document of `graph` laid out as `layout`; node links are `prefix + page + extension`.
pub fn render(graph: &Graph, layout: &Layout, prefix: &str, extension: &str) -> String {
    let legend_height = 34.0;
    let width = layout.width.max(720.0);
    let height = layout.height + legend_height;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
         class=\"topology\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-labelledby=\"topology-title\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" \
         font-size=\"12\">\n<title id=\"topology-title\">Topology: {n} nodes, {e} edges</title>\n",
        w = fmt(width),
        h = fmt(height),
        n = graph.nodes.len(),
        e = graph.edges.len(),
    );
    out.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#607d8b\"/>\
         </marker></defs>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n<g class=\"edges\" \
         fill=\"none\" stroke=\"#607d8b\" stroke-width=\"1.4\">\n",
    );
    for (&(from, to), points) in graph.edges.iter().zip(&layout.edges) {
        let Some(&(x0, y0)) = points.first() else { continue };
        let mut d = format!("M{},{}", fmt(x0), fmt(y0));
        for pair in points.windows(2) {
            let ((ax, ay), (bx, by)) = (pair[0], pair[1]);
            // Horizontal tangents at both ends: edges leave and enter boxes sideways.
            let dx = (bx - ax) / 2.0;
            let _ = write!(
                d,
                " C{},{} {},{} {},{}",
                fmt(ax + dx),
                fmt(ay),
                fmt(bx - dx),
                fmt(by),
                fmt(bx),
                fmt(by)
            );
        }
        let _ = writeln!(
            out,
            "<path d=\"{d}\" marker-end=\"url(#arrow)\"><title>{} → {}</title></path>",
            xml_escape(&graph.nodes[from].label),
            xml_escape(&graph.nodes[to].label)
        );
    }
    out.push_str("</g>\n<g class=\"nodes\">\n");
    for (node, rect) in graph.nodes.iter().zip(&layout.nodes) {
        let (fill, stroke) = colours(node.kind);
        let radius = match node.kind {
            Kind::Topic | Kind::DualWrite | Kind::Dlq => 14.0,
            Kind::Collection => 2.0,
            _ => 6.0,
        };
        let dash = if node.kind == Kind::DualWrite { " stroke-dasharray=\"4 3\"" } else { "" };
        let body = format!(
            "<g class=\"node {class}\" id=\"{id}\"><title>{kind} {label}</title><rect x=\"{x}\" y=\"{y}\" \
             width=\"{w}\" height=\"{h}\" rx=\"{r}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"{dash}/>\
             <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\" dominant-baseline=\"central\" fill=\"#1a1a1a\">{shown}</text></g>",
            class = node.kind.class(),
            id = xml_escape(&format!("node-{}", node.id)),
            kind = node.kind.class(),
            label = xml_escape(&node.label),
            x = fmt(rect.x),
            y = fmt(rect.y),
            w = fmt(rect.w),
            h = fmt(rect.h),
            r = fmt(radius),
            tx = fmt(rect.x + rect.w / 2.0),
            ty = fmt(rect.y + NODE_HEIGHT / 2.0),
            shown = xml_escape(&layout::shown_label(&node.label)),
        );
        match &node.page {
            Some(page) => {
                let href = xml_escape(&format!("{prefix}{page}.{extension}"));
                let _ = writeln!(out, "<a href=\"{href}\" xlink:href=\"{href}\">{body}</a>");
            }
            None => {
                let _ = writeln!(out, "{body}");
            }
        }
    }
    out.push_str("</g>\n<g class=\"legend\">\n");
    let mut x = 20.0;
    let y = layout.height + 6.0;
    for kind in Kind::ALL {
        let (fill, stroke) = colours(kind);
        let label = kind.class();
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"14\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\"/>\
             <text x=\"{}\" y=\"{}\" dominant-baseline=\"central\" fill=\"#333333\">{label}</text>",
            fmt(x),
            fmt(y),
            fmt(x + 20.0),
            fmt(y + 7.0),
        );
        x += 20.0 + label.len() as f64 * layout::CHAR_WIDTH + 18.0;
    }
    out.push_str("</g>\n</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::xml_escape;

    #[test]
    fn markup_and_controls_are_escaped() {
        assert_eq!(xml_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(xml_escape("a\u{1}b"), "a\u{fffd}b");
    }
}
