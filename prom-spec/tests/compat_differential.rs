//! Differential soundness test: a seeded generator makes schema pairs over the 2020-12
//! vocabulary (the new schema a mutation of the old, so most pairs are related), and whenever
//! the checker says "compatible" in some mode, edge-value instances of the writer side that the
//! exact validator (`jsonschema`) accepts must be accepted by the reader side too.

use prom_spec::compat::{PairMode, check};
use serde_json::{Map, Value, json};

/// Schema pairs generated (each checked backward, forward and full).
const PAIRS: usize = 1_200;

/// xorshift64*: deterministic, dependency-free randomness (the seed makes failures replayable).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn small(&mut self) -> i64 {
        self.below(7) as i64 - 2
    }
}

const TYPES: &[&str] = &["null", "boolean", "integer", "number", "string", "array", "object"];
const NAMES: &[&str] = &["a", "b", "c"];
const PATTERNS: &[&str] = &["^a", "^[a-c]*$", "b$", "^a+$"];
const FORMATS: &[&str] = &["email", "date", "uuid"];

fn leaf(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => json!(true),
        1 => json!(false),
        2 => json!({}),
        3 => json!({ "type": rng.pick(TYPES) }),
        4 => json!({ "type": [rng.pick(TYPES), rng.pick(TYPES)] }),
        5 => json!({ "enum": enum_values(rng) }),
        6 => json!({ "const": rng.pick(&[json!("a"), json!(1), json!(null), json!(true)]).clone() }),
        7 => {
            let lo = rng.small();
            json!({ "type": rng.pick(&["integer", "number"]), "minimum": lo, "maximum": lo + rng.below(5) as i64 })
        }
        8 => {
            json!({ "type": "number", "multipleOf": rng.pick(&[json!(1), json!(2), json!(0.5), json!(3)]).clone() })
        }
        9 => {
            let lo = rng.below(3);
            json!({ "type": "string", "minLength": lo, "maxLength": lo + rng.below(3) })
        }
        10 => json!({ "type": "string", "pattern": rng.pick(PATTERNS) }),
        _ => json!({ "type": "string", "format": rng.pick(FORMATS) }),
    }
}

fn enum_values(rng: &mut Rng) -> Vec<Value> {
    let pool = [json!("a"), json!("b"), json!("ab"), json!(1), json!(2), json!(null), json!(true), json!([])];
    let mut out: Vec<Value> = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let v = rng.pick(&pool).clone();
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn schema(rng: &mut Rng, depth: usize) -> Value {
    if depth == 0 || rng.chance(35) {
        return leaf(rng);
    }
    match rng.below(10) {
        0..=2 => object(rng, depth),
        3..=4 => array(rng, depth),
        5 => json!({ "allOf": [schema(rng, depth - 1), schema(rng, depth - 1)] }),
        6 => json!({ "anyOf": [schema(rng, depth - 1), schema(rng, depth - 1)] }),
        7 => json!({ "oneOf": [schema(rng, depth - 1), schema(rng, depth - 1)] }),
        8 => json!({ "not": schema(rng, depth - 1) }),
        _ => {
            json!({ "if": schema(rng, depth - 1), "then": schema(rng, depth - 1), "else": schema(rng, depth - 1) })
        }
    }
}

fn object(rng: &mut Rng, depth: usize) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("object"));
    let mut props = Map::new();
    for name in NAMES {
        if rng.chance(50) {
            props.insert((*name).into(), schema(rng, depth - 1));
        }
    }
    m.insert("properties".into(), Value::Object(props));
    if rng.chance(40) {
        m.insert("required".into(), json!([rng.pick(NAMES)]));
    }
    match rng.below(6) {
        0 => {
            m.insert("additionalProperties".into(), json!(false));
        }
        1 => {
            m.insert("additionalProperties".into(), schema(rng, depth - 1));
        }
        2 => {
            m.insert("patternProperties".into(), json!({ "^x": schema(rng, depth - 1) }));
        }
        3 => {
            m.insert("unevaluatedProperties".into(), json!(false));
        }
        _ => {}
    }
    if rng.chance(15) {
        m.insert("propertyNames".into(), json!({ "maxLength": 1 + rng.below(2) }));
    }
    if rng.chance(15) {
        m.insert("dependentRequired".into(), json!({ "a": ["b"] }));
    }
    if rng.chance(10) {
        m.insert("dependentSchemas".into(), json!({ "a": { "required": ["c"] } }));
    }
    if rng.chance(15) {
        m.insert("minProperties".into(), json!(rng.below(2)));
    }
    if rng.chance(15) {
        m.insert("maxProperties".into(), json!(1 + rng.below(2)));
    }
    Value::Object(m)
}

fn array(rng: &mut Rng, depth: usize) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("array"));
    if rng.chance(50) {
        let n = 1 + rng.below(3);
        m.insert("prefixItems".into(), Value::Array((0..n).map(|_| schema(rng, depth - 1)).collect()));
    }
    match rng.below(4) {
        0 => {
            m.insert("items".into(), schema(rng, depth - 1));
        }
        1 => {
            m.insert("items".into(), json!(false));
        }
        2 => {
            m.insert("unevaluatedItems".into(), schema(rng, depth - 1));
        }
        _ => {}
    }
    if rng.chance(25) {
        m.insert("contains".into(), schema(rng, depth - 1));
        if rng.chance(30) {
            m.insert("minContains".into(), json!(rng.below(3)));
        }
    }
    if rng.chance(25) {
        m.insert("minItems".into(), json!(rng.below(3)));
    }
    if rng.chance(25) {
        m.insert("maxItems".into(), json!(1 + rng.below(3)));
    }
    if rng.chance(20) {
        m.insert("uniqueItems".into(), json!(true));
    }
    Value::Object(m)
}

/// A root that sometimes routes through `$defs` and `$ref`.
fn root(rng: &mut Rng) -> Value {
    let body = schema(rng, 3);
    if rng.chance(25) { json!({ "$defs": { "d": body }, "$ref": "#/$defs/d" }) } else { body }
}

/// A copy of `v` with one random change somewhere inside.
fn mutate(rng: &mut Rng, v: &Value) -> Value {
    let mut out = v.clone();
    let mut slots = Vec::new();
    collect_schema_slots(&out, String::new(), &mut slots);
    // Rewriting a root that holds `$defs` would orphan its `$ref`: change inside instead.
    if out.get("$defs").is_some() && slots.len() > 1 {
        slots.remove(0);
    }
    let at = rng.pick(&slots).clone();
    if let Some(target) = out.pointer_mut(&at) {
        *target = mutate_here(rng, target);
    }
    out
}

fn collect_schema_slots(v: &Value, ptr: String, out: &mut Vec<String>) {
    out.push(ptr.clone());
    let Value::Object(m) = v else { return };
    for (k, child) in m {
        match k.as_str() {
            "properties" | "patternProperties" | "$defs" | "dependentSchemas" => {
                for (name, c) in child.as_object().into_iter().flatten() {
                    collect_schema_slots(c, format!("{ptr}/{k}/{name}"), out);
                }
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                for (i, c) in child.as_array().into_iter().flatten().enumerate() {
                    collect_schema_slots(c, format!("{ptr}/{k}/{i}"), out);
                }
            }
            "items"
            | "additionalProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "unevaluatedItems"
            | "unevaluatedProperties"
            | "propertyNames" => collect_schema_slots(child, format!("{ptr}/{k}"), out),
            _ => {}
        }
    }
}

fn mutate_here(rng: &mut Rng, v: &Value) -> Value {
    let Value::Object(m) = v else {
        return if rng.chance(50) { leaf(rng) } else { json!({ "not": v.clone() }) };
    };
    let mut m = m.clone();
    // `unevaluated*` read their siblings: change those under an unchanged `unevaluated*`.
    if (m.contains_key("unevaluatedItems") || m.contains_key("unevaluatedProperties")) && rng.chance(50) {
        if let Some(Value::Array(items)) = m.get_mut("prefixItems") {
            items.pop();
        }
        if let Some(Value::Object(props)) = m.get_mut("properties") {
            let first = props.keys().next().cloned();
            first.map(|k| props.remove(&k));
        }
        return Value::Object(m);
    }
    let numeric = [
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minContains",
    ];
    match rng.below(14) {
        0 => return leaf(rng),
        1 => return json!({ "anyOf": [v.clone(), leaf(rng)] }),
        2 => return json!({ "allOf": [v.clone(), leaf(rng)] }),
        3 => {
            if let Some(Value::Object(inner)) = m
                .get("not")
                .cloned()
                .map(|n| mutate_here(rng, &n))
                .map(|n| json!({ "x": n }))
                .and_then(|w| w.get("x").cloned())
            {
                m.insert("not".into(), Value::Object(inner));
            } else {
                m.insert("type".into(), json!(rng.pick(TYPES)));
            }
        }
        4 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            if !keys.is_empty() {
                let k = rng.pick(&keys).clone();
                m.remove(&k);
            }
        }
        5 => {
            for k in numeric {
                if let Some(n) = m.get(k).and_then(Value::as_i64) {
                    let delta = if rng.chance(50) { 1 } else { -1 };
                    let next = n + delta;
                    m.insert(
                        k.into(),
                        json!(if k == "minimum" || k == "maximum" { next } else { next.max(0) }),
                    );
                    break;
                }
            }
        }
        6 => {
            m.insert("enum".into(), json!(enum_values(rng)));
        }
        7 => {
            if let Some(Value::Array(vals)) = m.get("enum").cloned() {
                let mut vals = vals;
                if rng.chance(50) && vals.len() > 1 {
                    vals.pop();
                } else {
                    vals.push(json!("c"));
                }
                m.insert("enum".into(), Value::Array(vals));
            } else {
                m.insert("required".into(), json!([rng.pick(NAMES)]));
            }
        }
        8 => {
            if let Some(Value::Array(items)) = m.get("prefixItems").cloned() {
                let mut items = items;
                if rng.chance(50) && items.len() > 1 {
                    items.pop();
                } else {
                    items.push(leaf(rng));
                }
                m.insert("prefixItems".into(), Value::Array(items));
            } else {
                m.insert("additionalProperties".into(), json!(rng.chance(50)));
            }
        }
        9 => {
            m.insert("pattern".into(), json!(rng.pick(PATTERNS)));
        }
        10 => {
            m.insert("multipleOf".into(), rng.pick(&[json!(1), json!(2), json!(0.5), json!(4)]).clone());
        }
        11 => {
            m.insert("uniqueItems".into(), json!(rng.chance(50)));
        }
        12 => {
            m.insert("exclusiveMinimum".into(), json!(rng.small()));
        }
        _ => {
            m.insert("format".into(), json!(rng.pick(FORMATS)));
        }
    }
    Value::Object(m)
}

/// Edge values for a schema: bounds, empties, boundary lengths, each enum value, declared
/// properties with generated values plus extra ones, prefix items plus extra items.
fn instances(schema: &Value, root: &Value, depth: usize, out: &mut Vec<Value>) {
    if depth > 3 {
        return;
    }
    let Value::Object(m) = schema else { return };
    if let Some(Value::String(r)) = m.get("$ref")
        && let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p))
    {
        instances(target, root, depth + 1, out);
    }
    for key in ["enum"] {
        if let Some(Value::Array(vals)) = m.get(key) {
            out.extend(vals.iter().cloned());
        }
    }
    if let Some(c) = m.get("const") {
        out.push(c.clone());
    }
    for key in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"] {
        if let Some(n) = m.get(key).and_then(Value::as_f64) {
            for d in [-1.0, -0.5, 0.0, 0.5, 1.0] {
                out.push(json!(n + d));
            }
        }
    }
    for key in ["minLength", "maxLength"] {
        if let Some(n) = m.get(key).and_then(Value::as_u64) {
            for len in n.saturating_sub(1)..=n + 1 {
                out.push(json!("a".repeat(len as usize)));
                out.push(json!("b".repeat(len as usize)));
            }
        }
    }
    let mut element_pool = Vec::new();
    for key in ["allOf", "anyOf", "oneOf"] {
        for c in m.get(key).and_then(Value::as_array).into_iter().flatten() {
            instances(c, root, depth + 1, out);
        }
    }
    for key in ["then", "else", "if", "not", "items", "contains", "unevaluatedItems"] {
        if let Some(c) = m.get(key) {
            let mut sub = Vec::new();
            instances(c, root, depth + 1, &mut sub);
            if matches!(key, "items" | "contains" | "unevaluatedItems") {
                element_pool.extend(sub);
            } else {
                out.extend(sub);
            }
        }
    }
    if let Some(Value::Array(prefix)) = m.get("prefixItems") {
        let mut tuple = Vec::new();
        for p in prefix {
            tuple.push(valid_samples(p, root, depth).first().cloned().unwrap_or(json!("a")));
            out.push(Value::Array(tuple.clone()));
        }
        for extra in [json!("x"), json!(1), json!(null)] {
            let mut longer = tuple.clone();
            longer.push(extra.clone());
            out.push(Value::Array(longer.clone()));
            longer.push(extra);
            out.push(Value::Array(longer));
        }
    }
    for e in element_pool.iter().take(4) {
        out.push(json!([e]));
        out.push(json!([e, e]));
        out.push(json!([e, "x"]));
    }
    if let Some(Value::Object(props)) = m.get("properties") {
        let mut full = Map::new();
        for (name, p) in props {
            let sub = valid_samples(p, root, depth);
            for v in sub.iter().take(3) {
                out.push(json!({ name.clone(): v.clone() }));
            }
            full.insert(name.clone(), sub.first().cloned().unwrap_or(json!("a")));
            out.push(Value::Object(full.clone()));
        }
        let mut extra = full.clone();
        extra.insert("x".into(), json!(1));
        out.push(Value::Object(extra.clone()));
        extra.insert("zz".into(), json!("a"));
        out.push(Value::Object(extra));
    }
}

/// Up to three values valid under a subschema (so tuples and objects built from them are
/// valid too and reach the keywords that matter), evaluated with the root's `$defs` in scope.
fn valid_samples(schema: &Value, root: &Value, depth: usize) -> Vec<Value> {
    let mut pool = Vec::new();
    instances(schema, root, depth + 1, &mut pool);
    pool.extend(common_values());
    let mut scoped = match schema {
        Value::Object(m) => Value::Object(m.clone()),
        other => return pool.into_iter().filter(|_| other == &json!(true)).take(3).collect(),
    };
    if let (Some(defs), Value::Object(m)) = (root.get("$defs"), &mut scoped) {
        m.entry("$defs").or_insert_with(|| defs.clone());
    }
    let Ok(validator) = jsonschema::validator_for(&scoped) else { return Vec::new() };
    pool.into_iter().filter(|v| validator.is_valid(v)).take(3).collect()
}

/// Values every schema is tried with, besides its own edge values.
fn common_values() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(-1),
        json!(2),
        json!(3),
        json!(2.5),
        json!(-0.5),
        json!(10),
        json!(""),
        json!("a"),
        json!("b"),
        json!("ab"),
        json!("abc"),
        json!("aaaa"),
        json!("x@y.z"),
        json!("2024-01-31"),
        json!([]),
        json!([1]),
        json!(["a"]),
        json!(["a", 1, 2]),
        json!(["a", 1]),
        json!([1, 1]),
        json!(["a", "b", "c"]),
        json!({}),
        json!({ "a": 1 }),
        json!({ "a": "a" }),
        json!({ "b": "a" }),
        json!({ "a": "a", "b": 1 }),
        json!({ "a": null, "c": [] }),
        json!({ "x": 1 }),
        json!({ "xa": "a", "a": true }),
    ]
}

fn candidates(schema: &Value) -> Vec<Value> {
    let mut out = common_values();
    instances(schema, schema, 0, &mut out);
    out
}

/// The values valid under `writer` that `reader` rejects.
fn counterexamples(writer: &Value, reader: &Value) -> Vec<Value> {
    let (Ok(w), Ok(r)) = (jsonschema::validator_for(writer), jsonschema::validator_for(reader)) else {
        return Vec::new();
    };
    // The reader's edge values are tried too: they sit right at the reader's boundaries.
    let mut values = candidates(writer);
    values.extend(candidates(reader));
    values.into_iter().filter(|v| w.is_valid(v) && !r.is_valid(v)).collect()
}

/// Pairs a checker once got wrong, run before the generated ones.
fn known_pairs() -> Vec<(Value, Value)> {
    let tuple = |n: usize| {
        let prefix: Vec<Value> = std::iter::once(json!({ "type": "string" }))
            .chain((1..n).map(|_| json!({ "type": "number" })))
            .collect();
        json!({ "type": "array", "prefixItems": prefix, "unevaluatedItems": { "type": "string" } })
    };
    let closed = |names: &[&str]| {
        let props: Map<String, Value> = names.iter().map(|n| ((*n).to_owned(), json!({}))).collect();
        json!({ "type": "object", "properties": props, "unevaluatedProperties": false })
    };
    vec![
        // Confluent's JSON-Schema diff example: ["a", 1, 2] is valid before, invalid after.
        (tuple(3), tuple(2)),
        (closed(&["a", "b"]), closed(&["a"])),
        (
            json!({ "allOf": [{ "if": { "type": "string" }, "then": { "minLength": 1 } }, { "if": { "type": "number" }, "then": { "minLength": 3 } }] }),
            json!({ "if": { "type": "string" }, "then": { "minLength": 3 } }),
        ),
        // `format` only annotates in 2020-12 (the runtime does not assert it): "a" is a valid
        // new value, so the writer's enum is not empty.
        (json!({ "enum": [2] }), json!({ "enum": ["a"], "format": "uuid" })),
        (
            json!({ "allOf": [{ "enum": ["a"] }, { "type": "string", "format": "date" }] }),
            json!({ "allOf": [{ "enum": ["a"] }, { "type": "integer", "format": "date" }] }),
        ),
    ]
}

#[test]
fn compatible_verdicts_hold_on_generated_pairs() {
    // `PROM_DIFF_SEED` explores other pairs (and replays a failure) without editing the test.
    let seed: u64 =
        std::env::var("PROM_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c0ff_ee15_b00c);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1); // distinct seeds, never 0
    let (mut compatible, mut incompatible, mut undecided, mut errors) = (0usize, 0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    let mut first_error = None;
    // `PROM_DIFF_GENERATED_ONLY` leaves the known pairs out, to see what generation alone finds.
    let known =
        if std::env::var_os("PROM_DIFF_GENERATED_ONLY").is_some() { Vec::new() } else { known_pairs() };
    for i in 0..PAIRS + known.len() {
        let (old, new) = match known.get(i) {
            Some(pair) => pair.clone(),
            None => {
                let old = root(&mut rng);
                let mut new = mutate(&mut rng, &old);
                if rng.chance(30) {
                    new = mutate(&mut rng, &new);
                }
                (old, new)
            }
        };
        for mode in [PairMode::Backward, PairMode::Forward, PairMode::Full] {
            let report = match check(&old, &new, mode) {
                Ok(r) => r,
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{e} (old: {old}, new: {new})"));
                    continue;
                }
            };
            if !report.violations.is_empty() {
                incompatible += 1;
                continue;
            }
            if !report.undecided.is_empty() {
                undecided += 1;
                continue;
            }
            compatible += 1;
            let mut broken = Vec::new();
            if matches!(mode, PairMode::Backward | PairMode::Full) {
                broken.extend(counterexamples(&old, &new).into_iter().map(|v| ("old value", v)));
            }
            if matches!(mode, PairMode::Forward | PairMode::Full) {
                broken.extend(counterexamples(&new, &old).into_iter().map(|v| ("new value", v)));
            }
            if let Some((what, value)) = broken.first() {
                failures.push(format!(
                    "pair {i} {mode:?}: said compatible, but {what} {value} breaks it\n  old: {old}\n  new: {new}"
                ));
            }
        }
    }
    println!(
        "{PAIRS} generated + {} known pairs × 3 modes: {compatible} compatible, {incompatible} incompatible, {undecided} undecided, {errors} schema errors",
        known.len()
    );
    if let Some(e) = first_error {
        println!("first schema error (the checker refusing a generated schema): {e}");
    }
    assert!(failures.is_empty(), "{} unsound verdict(s):\n{}", failures.len(), failures.join("\n"));
    assert!(compatible >= 1_000, "only {compatible} compatible verdicts: the test would prove little");
}
