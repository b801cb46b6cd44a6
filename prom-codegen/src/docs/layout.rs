//! A deterministic layered layout (Sugiyama style), left to right: cycles broken by reversing
//! DFS back edges, longest-path layering, dummy nodes on long edges, barycentric ordering
//! sweeps keeping the order with the fewest crossings, columns centred vertically.

use super::graph::Graph;

/// Width of one character of the graph's monospace font (12px), for sizing boxes.
pub const CHAR_WIDTH: f64 = 7.25;
/// Labels longer than this are cut with `…` (the full name is in the node's tooltip).
pub const MAX_LABEL_CHARS: usize = 40;
/// Box height.
pub const NODE_HEIGHT: f64 = 30.0;
const DUMMY_HEIGHT: f64 = 10.0;
const ROW_GAP: f64 = 18.0;
const COLUMN_GAP: f64 = 70.0;
/// Space around the drawing.
pub const MARGIN: f64 = 20.0;
const SWEEPS: usize = 12;

/// A placed box (top-left corner and size).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// The layout: a box per graph node (same order), a polyline per graph edge (same order,
/// from the source's border to the target's border), the drawing's size.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Node boxes.
    pub nodes: Vec<Rect>,
    /// Edge routes.
    pub edges: Vec<Vec<(f64, f64)>>,
    /// Total width.
    pub width: f64,
    /// Total height.
    pub height: f64,
}

/// The label as drawn: at most [`MAX_LABEL_CHARS`] characters.
pub fn shown_label(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_owned()
    } else {
        let mut cut: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

fn node_width(label: &str) -> f64 {
    (shown_label(label).chars().count() as f64 * CHAR_WIDTH + 24.0).max(90.0)
}

/// Edges made acyclic: `(from, to, reversed)`.
fn break_cycles(n: usize, edges: &[(usize, usize)]) -> Vec<(usize, usize, bool)> {
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        out_edges[a].push(b);
    }
    // 0 = unvisited, 1 = on the stack, 2 = done. Iterative DFS: deep graphs must not overflow.
    let mut state = vec![0u8; n];
    let mut back = std::collections::BTreeSet::new();
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&w) = out_edges[v].get(*next) {
                *next += 1;
                match state[w] {
                    0 => {
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        back.insert((v, w));
                    }
                    _ => {}
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    edges.iter().map(|&(a, b)| if back.contains(&(a, b)) { (b, a, true) } else { (a, b, false) }).collect()
}

/// Longest-path layers of a DAG (sources in layer 0), in a deterministic topological order.
fn layers(n: usize, dag: &[(usize, usize, bool)]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b, _) in dag {
        indegree[b] += 1;
        succ[a].push(b);
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut layer = vec![0usize; n];
    while let Some(v) = ready.pop_first() {
        for &w in &succ[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                ready.insert(w);
            }
        }
    }
    layer
}

/// Crossings between two adjacent columns, given each edge as (upper position, lower position):
/// the inversions of the lower positions once sorted by upper position, counted with a Fenwick
/// tree in O(E log V), so a spec with thousands of edges still lays out quickly.
fn crossings(segments: &mut [(usize, usize)]) -> usize {
    segments.sort_unstable();
    let size = segments.iter().map(|s| s.1 + 1).max().unwrap_or(0);
    let mut tree = vec![0usize; size + 1];
    let mut count = 0;
    for (seen, &(_, lower)) in segments.iter().enumerate() {
        // Edges already seen whose lower end is at or left of this one do not cross it.
        let mut i = lower + 1;
        let mut not_crossing = 0;
        while i > 0 {
            not_crossing += tree[i];
            i &= i - 1;
        }
        count += seen - not_crossing;
        let mut i = lower + 1;
        while i <= size {
            tree[i] += 1;
            i += i & i.wrapping_neg();
        }
    }
    count
}

struct Virtual {
    /// Per virtual node (real nodes first, then dummies): its layer.
    layer: Vec<usize>,
    /// Virtual edges between adjacent layers.
    edges: Vec<(usize, usize)>,
    /// Per graph edge: the chain of virtual nodes from its DAG source to its DAG target.
    chains: Vec<Vec<usize>>,
}

fn add_dummies(dag: &[(usize, usize, bool)], layer: &[usize]) -> Virtual {
    let mut v = Virtual { layer: layer.to_vec(), edges: Vec::new(), chains: Vec::new() };
    for &(a, b, _) in dag {
        let mut chain = vec![a];
        let mut previous = a;
        for l in layer[a] + 1..layer[b] {
            let dummy = v.layer.len();
            v.layer.push(l);
            v.edges.push((previous, dummy));
            chain.push(dummy);
            previous = dummy;
        }
        v.edges.push((previous, b));
        chain.push(b);
        v.chains.push(chain);
    }
    v
}

fn total_crossings(
    order: &[Vec<usize>],
    position: &[usize],
    layer: &[usize],
    edges: &[(usize, usize)],
) -> usize {
    let mut per_layer: Vec<Vec<(usize, usize)>> = vec![Vec::new(); order.len()];
    for &(a, b) in edges {
        per_layer[layer[a]].push((position[a], position[b]));
    }
    per_layer.iter_mut().map(|segments| crossings(segments)).sum()
}

fn positions(order: &[Vec<usize>], count: usize) -> Vec<usize> {
    let mut position = vec![0; count];
    for column in order {
        for (i, &v) in column.iter().enumerate() {
            position[v] = i;
        }
    }
    position
}

/// Barycentric ordering: alternate sweeps, each column sorted by the mean position of its
/// neighbours in the column just fixed; the order with the fewest crossings wins.
fn order(v: &Virtual) -> Vec<Vec<usize>> {
    let count = v.layer.len();
    let depth = v.layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for node in 0..count {
        order[v.layer[node]].push(node);
    }
    let mut pred: Vec<Vec<usize>> = vec![Vec::new(); count];
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); count];
    for &(a, b) in &v.edges {
        succ[a].push(b);
        pred[b].push(a);
    }
    let mut position = positions(&order, count);
    let mut best = order.clone();
    let mut best_crossings = total_crossings(&order, &position, &v.layer, &v.edges);
    for sweep in 0..SWEEPS {
        let down = sweep % 2 == 0;
        let columns: Vec<usize> =
            if down { (1..depth).collect() } else { (0..depth.saturating_sub(1)).rev().collect() };
        for l in columns {
            let neighbours = if down { &pred } else { &succ };
            let mut keyed: Vec<(f64, usize, usize)> = order[l]
                .iter()
                .map(|&node| {
                    let adjacent = &neighbours[node];
                    let centre = if adjacent.is_empty() {
                        position[node] as f64
                    } else {
                        adjacent.iter().map(|&w| position[w] as f64).sum::<f64>() / adjacent.len() as f64
                    };
                    (centre, position[node], node)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            order[l] = keyed.into_iter().map(|(_, _, node)| node).collect();
            for (i, &node) in order[l].iter().enumerate() {
                position[node] = i;
            }
        }
        let now = total_crossings(&order, &position, &v.layer, &v.edges);
        if now < best_crossings {
            best_crossings = now;
            best = order.clone();
        }
    }
    best
}

/// Lays `graph` out.
pub fn layout(graph: &Graph) -> Layout {
    let n = graph.nodes.len();
    if n == 0 {
        return Layout { width: 2.0 * MARGIN, height: 2.0 * MARGIN, ..Layout::default() };
    }
    let dag = break_cycles(n, &graph.edges);
    let layer = layers(n, &dag);
    let virt = add_dummies(&dag, &layer);
    let order = order(&virt);
    let count = virt.layer.len();
    let size = |node: usize| -> (f64, f64) {
        if node < n { (node_width(&graph.nodes[node].label), NODE_HEIGHT) } else { (0.0, DUMMY_HEIGHT) }
    };
    // Columns: as wide as their widest box; heights stacked, then centred on the tallest.
    let column_width: Vec<f64> =
        order.iter().map(|column| column.iter().map(|&v| size(v).0).fold(0.0, f64::max)).collect();
    let column_height: Vec<f64> = order
        .iter()
        .map(|column| {
            column.iter().map(|&v| size(v).1).sum::<f64>() + ROW_GAP * column.len().saturating_sub(1) as f64
        })
        .collect();
    let tallest = column_height.iter().copied().fold(0.0, f64::max);
    let mut rects = vec![Rect { x: 0.0, y: 0.0, w: 0.0, h: 0.0 }; count];
    let mut x = MARGIN;
    for (l, column) in order.iter().enumerate() {
        let mut y = MARGIN + (tallest - column_height[l]) / 2.0;
        for &node in column {
            let (w, h) = size(node);
            // Boxes are centred in their column; dummies sit on its centre line.
            rects[node] = Rect { x: x + (column_width[l] - w) / 2.0, y, w, h };
            y += h + ROW_GAP;
        }
        x += column_width[l] + COLUMN_GAP;
    }
    let width = (x - COLUMN_GAP + MARGIN).round();
    let height = (tallest + 2.0 * MARGIN).round();
    let edges = dag
        .iter()
        .zip(&virt.chains)
        .map(|(&(_, _, reversed), chain)| {
            let last = chain.len() - 1;
            let mut points: Vec<(f64, f64)> = chain
                .iter()
                .enumerate()
                .map(|(i, &node)| {
                    let r = rects[node];
                    let cy = r.y + r.h / 2.0;
                    // Out of the source's right side; into the target's left side; dummies
                    // have no width, so their left is their centre.
                    if i == 0 && i != last { (r.x + r.w, cy) } else { (r.x, cy) }
                })
                .collect();
            if reversed {
                points.reverse();
            }
            points
        })
        .collect();
    Layout { nodes: rects.into_iter().take(n).collect(), edges, width, height }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::graph::{Kind, Node};

    fn graph(labels: &[&str], edges: &[(usize, usize)]) -> Graph {
        let nodes = labels
            .iter()
            .map(|l| Node { id: format!("topic:{l}"), kind: Kind::Topic, label: (*l).to_owned(), page: None })
            .collect();
        Graph { nodes, edges: edges.to_vec() }
    }

    #[test]
    fn layers_follow_edges_and_cycles_terminate() {
        let g = graph(&["a", "b", "c", "d"], &[(0, 1), (1, 2), (2, 0), (0, 3), (3, 2)]);
        let l = layout(&g);
        assert_eq!(l.nodes.len(), 4);
        assert_eq!(l.edges.len(), 5);
        // b right of a, c right of b and d.
        assert!(l.nodes[1].x > l.nodes[0].x);
        assert!(l.nodes[2].x > l.nodes[1].x && l.nodes[2].x > l.nodes[3].x);
        // The back edge c → a still ends at a.
        let back = &l.edges[2];
        let end = back[back.len() - 1];
        assert!((end.0 - (l.nodes[0].x + l.nodes[0].w)).abs() < 1e-9);
    }

    #[test]
    fn no_boxes_overlap_and_the_layout_is_deterministic() {
        let edges: Vec<(usize, usize)> = (0..30).map(|i| (i % 7, 7 + (i * 5) % 11)).collect();
        let labels: Vec<String> = (0..18).map(|i| format!("node-{i}")).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let g = graph(&labels, &edges);
        let a = layout(&g);
        let b = layout(&g);
        assert_eq!(a.nodes, b.nodes);
        for (i, r) in a.nodes.iter().enumerate() {
            for s in &a.nodes[i + 1..] {
                let apart = r.x + r.w <= s.x || s.x + s.w <= r.x || r.y + r.h <= s.y || s.y + s.h <= r.y;
                assert!(apart, "{r:?} overlaps {s:?}");
            }
            assert!(r.x >= 0.0 && r.y >= 0.0 && r.x + r.w <= a.width && r.y + r.h <= a.height);
        }
    }

    #[test]
    fn crossings_are_counted() {
        assert_eq!(crossings(&mut [(0, 1), (1, 0)]), 1);
        assert_eq!(crossings(&mut [(0, 0), (1, 1)]), 0);
        // Shared ends do not cross.
        assert_eq!(crossings(&mut [(0, 0), (0, 1), (1, 1)]), 0);
        assert_eq!(crossings(&mut [(0, 2), (1, 1), (2, 0)]), 3);
    }

    #[test]
    fn long_labels_are_cut() {
        let long = "x".repeat(100);
        assert_eq!(shown_label(&long).chars().count(), MAX_LABEL_CHARS);
        assert_eq!(shown_label("short"), "short");
    }
}
