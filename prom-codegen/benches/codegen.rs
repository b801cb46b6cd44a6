//! Code-generation benchmark: Prom against `cargo typify`, and the compile time of Prom's generated
//! code against a hand-written equivalent. Run it with `cargo bench -p prom-codegen --bench codegen`.
//!
//! The machine is noisy and shared, so every figure is printed as a ratio against a baseline
//! measured in the same run, and nothing asserts on a timing. The steps:
//!
//! 1. A synthetic system of 200 topics × 3 versions, written as YAML specs (one file per domain)
//!    and as one JSON Schema holding all 600 payload schemas under `$defs` (typify's input).
//! 2. Prom: `prom_codegen::generate` in-process, and `prom-codegen build` as a subprocess.
//! 3. `cargo typify` on the combined schema, with its default builder interface and without.
//! 4. Compile time of Prom's output, of a hand-written equivalent (generated here as text) and of
//!    typify's `--no-builder` output, as three crates of one throwaway workspace sharing one target
//!    directory. (With builders typify's output is ~4× larger and takes too long to compile here.)
//!
//! Environment: `PROM_BENCH_INSTALL=1` installs a missing `cargo-typify`; `PROM_BENCH_KEEP=1`
//! keeps the scratch directory for inspection; `PROM_BENCH_SKIP_COMPILE=1` skips step 4.

use serde_json::{Map, Value, json};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::time::{Duration, Instant, SystemTime};

const TOPICS: usize = 200;
const DOMAINS: [&str; 8] =
    ["orders", "billing", "inventory", "shipping", "accounts", "catalog", "payments", "support"];
const EVENTS: [&str; 5] = ["created", "updated", "cancelled", "completed", "archived"];
const STATUS: [&str; 4] = ["pending", "active", "completed", "failed"];
const PRIORITY: [&str; 3] = ["low", "normal", "high"];
/// Timed rebuilds per crate; the median is reported.
const COMPILE_ROUNDS: usize = 3;
const TYPIFY_INSTALL: &str = "cargo install cargo-typify --locked";

fn main() -> ExitCode {
    let started = Instant::now();
    let code = match Scratch::create() {
        Ok(scratch) => run(&scratch),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    };
    println!("\ntotal bench runtime: {:.1} s", started.elapsed().as_secs_f64());
    code
}

fn run(scratch: &Scratch) -> ExitCode {
    let topics = synthetic_topics();
    let inputs = match write_inputs(&scratch.dir, &topics) {
        Ok(inputs) => inputs,
        Err(error) => {
            eprintln!("error: cannot write the synthetic spec: {error}");
            return ExitCode::FAILURE;
        }
    };
    let schemas = topics.iter().map(|t| t.versions.len()).sum();
    println!(
        "codegen bench: {} topics × 3 versions = {schemas} schemas ({})",
        topics.len(),
        scratch.dir.display()
    );

    let prom = time_prom_in_process(&inputs.spec_dir);
    let cli = time_prom_cli(&inputs);
    let typify = time_typify(&inputs);
    let compile = if std::env::var_os("PROM_BENCH_SKIP_COMPILE").is_some() {
        eprintln!("\nPROM_BENCH_SKIP_COMPILE is set: skipping the compile-time comparison");
        Vec::new()
    } else {
        let crates = bench_crates(&topics, &prom, &typify);
        compile_times(&scratch.dir, crates)
    };
    let figures = Figures { schemas, prom: &prom, cli: &cli, typify: &typify, compile: &compile };
    figures.print();
    if prom.is_ok() && cli.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

// ------------------------------------------------------------------------------------------------
// The synthetic system
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Num,
    Bool,
    NullableStr,
    DateTime,
    Status,
    Priority,
    Address,
    Lines,
    Tags,
}

/// One property of a payload schema.
#[derive(Debug, Clone, Copy)]
struct Prop {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn req(name: &'static str, kind: Kind) -> Prop {
    Prop { name, kind, required: true }
}

const fn opt(name: &'static str, kind: Kind) -> Prop {
    Prop { name, kind, required: false }
}

/// Every payload has these: scalars, a string enum, a timestamp, a nested object and an array of
/// objects, required and optional.
const BASE: [Prop; 7] = [
    req("id", Kind::Str),
    req("seq", Kind::Int),
    req("amount", Kind::Num),
    req("status", Kind::Status),
    opt("created_at", Kind::DateTime),
    req("shipping_address", Kind::Address),
    req("lines", Kind::Lines),
];
/// Topics add 0–3 of these, so payloads range from 7 to 10 fields in v1 and 9 to 12 in v3.
/// `customerId` needs a serde rename; `comment` is nullable.
const EXTRAS: [Prop; 4] = [
    req("customerId", Kind::Str),
    opt("active", Kind::Bool),
    opt("comment", Kind::NullableStr),
    opt("retries", Kind::Int),
];
const ADDRESS: [Prop; 4] = [
    req("street", Kind::Str),
    req("city", Kind::Str),
    opt("postal_code", Kind::Str),
    opt("country", Kind::Str),
];
const LINE_ITEM: [Prop; 4] = [
    req("sku", Kind::Str),
    req("quantity", Kind::Int),
    req("unit_price", Kind::Num),
    opt("discount_pct", Kind::Num),
];

/// A hop that is not compatible on its own: `amount` is renamed and a new required field gets a
/// default, so the version carries an `upcast` block.
#[derive(Debug, Clone, Copy)]
struct Upcast {
    rename: (&'static str, &'static str),
    default: (Prop, &'static str),
}

const PRIORITY_UPCAST: Upcast =
    Upcast { rename: ("amount", "total_amount"), default: (req("priority", Kind::Priority), "normal") };
const CURRENCY_UPCAST: Upcast =
    Upcast { rename: ("amount", "total_amount"), default: (req("currency", Kind::Str), "EUR") };

/// How one version becomes the next.
enum Hop {
    /// Backward compatible: a new optional field (the root schemas are closed, so old data
    /// cannot already hold it).
    AddOptional(Prop),
    /// Needs an upcast.
    Upcast(Upcast),
}

impl Hop {
    fn apply(&self, previous: &[Prop]) -> (Vec<Prop>, Option<Upcast>) {
        let mut next = previous.to_vec();
        match self {
            Hop::AddOptional(prop) => {
                next.push(*prop);
                (next, None)
            }
            Hop::Upcast(upcast) => {
                for prop in &mut next {
                    if prop.name == upcast.rename.0 {
                        prop.name = upcast.rename.1;
                    }
                }
                next.push(upcast.default.0);
                (next, Some(*upcast))
            }
        }
    }
}

struct Topic {
    index: usize,
    domain: &'static str,
    name: String,
    module: String,
    /// Properties of versions 1, 2, 3.
    versions: Vec<Vec<Prop>>,
    /// The upcast into each version (none into version 1).
    upcasts: Vec<Option<Upcast>>,
}

fn synthetic_topics() -> Vec<Topic> {
    (0..TOPICS).map(synthetic_topic).collect()
}

/// Topic `i`: one compatible hop and one upcast hop, in alternating order so that both kinds
/// appear at both positions.
fn synthetic_topic(i: usize) -> Topic {
    let domain = DOMAINS[i % DOMAINS.len()];
    let name = format!("{domain}.e{i:03}.{}", EVENTS[i / DOMAINS.len() % EVENTS.len()]);
    let mut v1 = BASE.to_vec();
    v1.extend((0..i % 4).map(|k| EXTRAS[(i / 4 + k) % EXTRAS.len()]));
    let hops = if i.is_multiple_of(2) {
        [Hop::AddOptional(opt("source", Kind::Str)), Hop::Upcast(PRIORITY_UPCAST)]
    } else {
        [Hop::Upcast(CURRENCY_UPCAST), Hop::AddOptional(opt("tags", Kind::Tags))]
    };
    let mut versions = vec![v1];
    let mut upcasts = vec![None];
    for hop in &hops {
        let previous = versions.last().map(Vec::as_slice).unwrap_or_default();
        let (next, upcast) = hop.apply(previous);
        versions.push(next);
        upcasts.push(upcast);
    }
    Topic { index: i, domain, module: name.replace('.', "_"), name, versions, upcasts }
}

// ------------------------------------------------------------------------------------------------
// Inputs: JSON Schemas, YAML specs, typify's combined schema
// ------------------------------------------------------------------------------------------------

fn kind_schema(kind: Kind) -> Value {
    match kind {
        Kind::Str => json!({ "type": "string" }),
        Kind::Int => json!({ "type": "integer", "minimum": 0 }),
        Kind::Num => json!({ "type": "number", "minimum": 0 }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::NullableStr => json!({ "type": ["string", "null"] }),
        Kind::DateTime => json!({ "type": "string", "format": "date-time" }),
        Kind::Status => json!({ "type": "string", "enum": STATUS }),
        Kind::Priority => json!({ "type": "string", "enum": PRIORITY }),
        Kind::Address => object_schema(&ADDRESS, true),
        Kind::Lines => json!({ "type": "array", "items": object_schema(&LINE_ITEM, false) }),
        Kind::Tags => json!({ "type": "array", "items": { "type": "string" } }),
    }
}

fn object_schema(props: &[Prop], closed: bool) -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    if closed {
        schema.insert("additionalProperties".into(), json!(false));
    }
    let required: Vec<&str> = props.iter().filter(|p| p.required).map(|p| p.name).collect();
    schema.insert("required".into(), json!(required));
    let properties = props.iter().map(|p| (p.name.to_owned(), kind_schema(p.kind))).collect();
    schema.insert("properties".into(), Value::Object(properties));
    Value::Object(schema)
}

fn topic_spec(topic: &Topic) -> Value {
    let mut spec = Map::new();
    let description = format!("Synthetic topic {} of the {} domain.", topic.index, topic.domain);
    spec.insert("description".into(), json!(description));
    spec.insert("key".into(), json!("/id"));
    spec.insert("partitions".into(), json!(1 + topic.index % 8));
    spec.insert("compat".into(), json!("backward"));
    if topic.index.is_multiple_of(3) {
        spec.insert("dual_write".into(), json!(true));
    }
    if topic.index.is_multiple_of(5) {
        spec.insert("headers".into(), json!(["x-source", "x-trace-id"]));
    }
    let versions = topic.versions.iter().zip(&topic.upcasts).enumerate();
    let versions = versions.map(|(n, (props, upcast))| ((n + 1).to_string(), version_spec(props, upcast)));
    spec.insert("versions".into(), Value::Object(versions.collect()));
    Value::Object(spec)
}

fn version_spec(props: &[Prop], upcast: &Option<Upcast>) -> Value {
    let mut version = Map::new();
    version.insert("schema".into(), object_schema(props, true));
    if let Some(upcast) = upcast {
        let rename = Map::from_iter([(upcast.rename.0.to_owned(), json!(upcast.rename.1))]);
        let set_default = Map::from_iter([(upcast.default.0.name.to_owned(), json!(upcast.default.1))]);
        version.insert("upcast".into(), json!({ "rename": rename, "set_default": set_default }));
    }
    Value::Object(version)
}

/// One spec file per domain, as people split them.
fn spec_files(topics: &[Topic]) -> Vec<(String, String)> {
    DOMAINS
        .iter()
        .map(|domain| {
            let in_domain = topics.iter().filter(|t| t.domain == *domain);
            let specs: Map<String, Value> = in_domain.map(|t| (t.name.clone(), topic_spec(t))).collect();
            let text = format!(
                "# Synthetic `{domain}` topics for the codegen bench.\n{}",
                yaml(&json!({ "topics": specs }))
            );
            (format!("{domain}.yaml"), text)
        })
        .collect()
}

/// All payload schemas under `$defs`, named the way typify names the types it generates.
fn combined_schema(topics: &[Topic]) -> Value {
    let defs: Map<String, Value> = topics
        .iter()
        .flat_map(|t| {
            let base = camel(&t.module);
            t.versions
                .iter()
                .enumerate()
                .map(move |(n, props)| (format!("{base}V{}", n + 1), object_schema(props, true)))
        })
        .collect();
    json!({ "$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs })
}

struct Inputs {
    dir: PathBuf,
    spec_dir: PathBuf,
    combined: PathBuf,
}

fn write_inputs(dir: &Path, topics: &[Topic]) -> Result<Inputs, String> {
    let spec_dir = dir.join("specs");
    for (name, text) in spec_files(topics) {
        write_file(&spec_dir.join(name), &text)?;
    }
    let combined = dir.join("combined.schema.json");
    let text = serde_json::to_string_pretty(&combined_schema(topics)).map_err(|e| e.to_string())?;
    write_file(&combined, &text)?;
    // Subprocesses below run in `dir`: pin them to Prom's toolchain, not rustup's default.
    let toolchain = workspace_root().join("rust-toolchain.toml");
    if toolchain.is_file() {
        std::fs::copy(&toolchain, dir.join("rust-toolchain.toml"))
            .map_err(|e| format!("cannot copy `{}`: {e}", toolchain.display()))?;
    }
    Ok(Inputs { dir: dir.to_path_buf(), spec_dir, combined })
}

// ------------------------------------------------------------------------------------------------
// A small YAML writer: block style like hand-written specs, flow style for small leaves
// ------------------------------------------------------------------------------------------------

fn yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) => yaml_block(map, 0, &mut out),
        other => out.push_str(&yaml_flow(other)),
    }
    out
}

fn yaml_block(map: &Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in map {
        match value {
            Value::Object(inner) if !fits_flow(value) => {
                out.push_str(&format!("{pad}{}:\n", yaml_key(key)));
                yaml_block(inner, indent + 2, out);
            }
            _ => out.push_str(&format!("{pad}{}: {}\n", yaml_key(key), yaml_flow(value))),
        }
    }
}

/// Whether a value reads well on one line, like `{ type: string }` or `[id, seq]`.
fn fits_flow(value: &Value) -> bool {
    let leaf =
        |v: &Value| !v.is_object() && v.as_array().is_none_or(|items| items.iter().all(|i| !i.is_object()));
    match value {
        Value::Object(map) => map.len() <= 3 && map.values().all(leaf),
        other => leaf(other),
    }
}

fn yaml_flow(value: &Value) -> String {
    match value {
        Value::String(s) => yaml_str(s),
        Value::Array(items) => format!("[{}]", items.iter().map(yaml_flow).collect::<Vec<_>>().join(", ")),
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(map) => {
            let entries: Vec<String> =
                map.iter().map(|(k, v)| format!("{}: {}", yaml_key(k), yaml_flow(v))).collect();
            format!("{{ {} }}", entries.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

/// Version numbers stay integer keys; everything else is a string key.
fn yaml_key(key: &str) -> String {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) { key.to_owned() } else { yaml_str(key) }
}

/// A plain scalar when YAML would read it back as the same string, else a double-quoted one
/// (JSON escapes are valid YAML escapes).
fn yaml_str(s: &str) -> String {
    let plain_chars = s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
    let plain_start = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/');
    let reserved =
        ["null", "true", "false", "yes", "no", "on", "off", "y", "n"].contains(&s.to_lowercase().as_str());
    if plain_chars && plain_start && !reserved { s.to_owned() } else { json!(s).to_string() }
}

// ------------------------------------------------------------------------------------------------
// The hand-written equivalent
// ------------------------------------------------------------------------------------------------

/// The same payload types and upcasts written the way a careful human would: plain derives,
/// `rename_all` on enums, nested types declared once per topic, infallible upcasts, and one
/// decode-to-latest function instead of a version enum.
fn handwritten_crate(topics: &[Topic]) -> String {
    let mut out = String::new();
    write_handwritten(topics, &mut out).expect("formatting into a String cannot fail");
    out
}

fn write_handwritten(topics: &[Topic], out: &mut String) -> fmt::Result {
    writeln!(out, "//! Hand-written equivalent of Prom's generated code (written by the codegen bench).")?;
    writeln!(out, "\nuse prom_runtime::DecodeError;\n")?;
    writeln!(out, "/// Decodes one stored version of a topic's payload.")?;
    writeln!(out, "fn decode<T: serde::de::DeserializeOwned>(")?;
    writeln!(out, "    topic: &'static str,\n    version: u32,\n    payload: serde_json::Value,")?;
    writeln!(out, ") -> Result<T, DecodeError> {{")?;
    writeln!(
        out,
        "    serde_json::from_value(payload).map_err(|source| DecodeError::Payload {{ topic, version, source }})"
    )?;
    writeln!(out, "}}")?;
    topics.iter().try_for_each(|topic| write_topic_module(topic, out))
}

fn write_topic_module(topic: &Topic, out: &mut String) -> fmt::Result {
    writeln!(out, "\n/// `{}`\npub mod {} {{", topic.name, topic.module)?;
    writeln!(out, "    use super::decode;\n    use prom_runtime::{{DecodeError, Timestamp}};")?;
    writeln!(
        out,
        "    use serde::{{Deserialize, Serialize}};\n\n    pub const NAME: &str = {:?};",
        topic.name
    )?;
    write_enum(out, "Status", &STATUS)?;
    if topic.versions.iter().flatten().any(|p| p.kind == Kind::Priority) {
        write_enum(out, "Priority", &PRIORITY)?;
    }
    write_struct(out, "Address", &ADDRESS, true)?;
    write_struct(out, "LineItem", &LINE_ITEM, false)?;
    for (n, props) in topic.versions.iter().enumerate() {
        write_struct(out, &format!("V{}", n + 1), props, true)?;
    }
    for n in 1..topic.versions.len() {
        write_upcast(out, topic, n)?;
    }
    write_decode_latest(out, topic.versions.len())?;
    writeln!(out, "}}")
}

fn write_enum(out: &mut String, name: &str, values: &[&str]) -> fmt::Result {
    writeln!(out, "\n    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]")?;
    writeln!(out, "    #[serde(rename_all = \"snake_case\")]\n    pub enum {name} {{")?;
    values.iter().try_for_each(|v| writeln!(out, "        {},", camel(v)))?;
    writeln!(out, "    }}")
}

fn write_struct(out: &mut String, name: &str, props: &[Prop], closed: bool) -> fmt::Result {
    writeln!(out, "\n    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]")?;
    if closed {
        writeln!(out, "    #[serde(deny_unknown_fields)]")?;
    }
    writeln!(out, "    pub struct {name} {{")?;
    for prop in props {
        let field = snake(prop.name);
        if field != prop.name {
            writeln!(out, "        #[serde(rename = {:?})]", prop.name)?;
        }
        if is_option(prop) {
            writeln!(out, "        #[serde(default, skip_serializing_if = \"Option::is_none\")]")?;
        }
        writeln!(out, "        pub {field}: {},", field_type(prop))?;
    }
    writeln!(out, "    }}")
}

fn is_option(prop: &Prop) -> bool {
    !prop.required || prop.kind == Kind::NullableStr
}

fn field_type(prop: &Prop) -> String {
    let ty = match prop.kind {
        Kind::Str | Kind::NullableStr => "String",
        Kind::Int => "i64",
        Kind::Num => "f64",
        Kind::Bool => "bool",
        Kind::DateTime => "Timestamp",
        Kind::Status => "Status",
        Kind::Priority => "Priority",
        Kind::Address => "Address",
        Kind::Lines => "Vec<LineItem>",
        Kind::Tags => "Vec<String>",
    };
    if is_option(prop) { format!("Option<{ty}>") } else { ty.to_owned() }
}

/// `pub fn vN_to_vM(v: VN) -> VM`, moving every field across.
fn write_upcast(out: &mut String, topic: &Topic, to: usize) -> fmt::Result {
    let (from_props, to_props) = (&topic.versions[to - 1], &topic.versions[to]);
    writeln!(out, "\n    pub fn v{to}_to_v{}(v: V{to}) -> V{} {{", to + 1, to + 1)?;
    writeln!(out, "        V{} {{", to + 1)?;
    for prop in to_props {
        writeln!(
            out,
            "            {}: {},",
            snake(prop.name),
            upcast_value(prop, from_props, topic.upcasts[to])
        )?;
    }
    writeln!(out, "        }}\n    }}")
}

fn upcast_value(target: &Prop, source: &[Prop], upcast: Option<Upcast>) -> String {
    if let Some(upcast) = upcast {
        if upcast.rename.1 == target.name {
            return format!("v.{}", snake(upcast.rename.0));
        }
        if upcast.default.0.name == target.name {
            return match target.kind {
                Kind::Priority => format!("Priority::{}", camel(upcast.default.1)),
                // The synthetic upcasts default only strings and enums.
                _ => format!("String::from({:?})", upcast.default.1),
            };
        }
    }
    if source.iter().any(|s| s.name == target.name) {
        format!("v.{}", snake(target.name))
    } else {
        "None".into()
    }
}

fn write_decode_latest(out: &mut String, latest: usize) -> fmt::Result {
    writeln!(
        out,
        "\n    pub fn decode_latest(version: u32, payload: serde_json::Value) -> Result<V{latest}, DecodeError> {{"
    )?;
    writeln!(out, "        Ok(match version {{")?;
    for n in 1..=latest {
        let decoded = format!("decode(NAME, {n}, payload)?");
        let upcast = (n..latest).fold(decoded, |inner, hop| format!("v{hop}_to_v{}({inner})", hop + 1));
        writeln!(out, "            {n} => {upcast},")?;
    }
    writeln!(
        out,
        "            other => return Err(DecodeError::UnknownVersion {{ topic: NAME, version: other }}),"
    )?;
    writeln!(out, "        }})\n    }}")
}

/// `orders_e007_created` → `OrdersE007Created`, `pending` → `Pending`.
fn camel(s: &str) -> String {
    s.split(['_', '.', '-'])
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// `customerId` → `customer_id`.
fn snake(s: &str) -> String {
    s.chars()
        .flat_map(|c| if c.is_ascii_uppercase() { vec!['_', c.to_ascii_lowercase()] } else { vec![c] })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Timing Prom and typify
// ------------------------------------------------------------------------------------------------

/// A measured median, or why it could not be measured.
type Measured = Result<Duration, String>;

/// Prom's in-process generation time and the source it generated.
type PromRun = Result<(Duration, String), String>;

fn time_prom_in_process(spec_dir: &Path) -> PromRun {
    eprintln!("\n[1/4] prom_codegen::generate, in-process");
    let paths = [spec_dir.to_path_buf()];
    let generate = || {
        prom_codegen::generate(&paths, Some(spec_dir))
            .map_err(|linted| format!("the synthetic spec does not lint clean:\n{}", linted.render()))
    };
    // The first run warms the file cache and checks the spec is clean.
    let first = generate().inspect_err(|e| eprintln!("error: {e}"))?;
    if !first.linted.diagnostics.is_empty() {
        eprintln!("warning: the synthetic spec has lint warnings:\n{}", first.linted.render());
    }
    let samples = sample(3, 9, Duration::from_secs(30), || {
        let start = Instant::now();
        generate()?;
        Ok(start.elapsed())
    })
    .inspect_err(|e| eprintln!("error: {e}"))?;
    let median = report_median("prom_codegen::generate", &samples);
    Ok((median, first.source))
}

fn time_prom_cli(inputs: &Inputs) -> Measured {
    eprintln!("\n[2/4] prom-codegen build, as a subprocess");
    let binary = prom_cli().inspect_err(|e| eprintln!("error: {e}"))?;
    let out = inputs.dir.join("cli-out").join("prom.rs");
    let samples = sample(3, 9, Duration::from_secs(30), || {
        // `build` skips writing an unchanged file; removing it keeps every run doing the full work.
        let _ = std::fs::remove_file(&out);
        let mut command = Command::new(&binary);
        command
            .arg("build")
            .arg("--specs")
            .arg(&inputs.spec_dir)
            .arg("--out")
            .arg(&out)
            .current_dir(&inputs.dir);
        run_timed(&mut command)
    })
    .inspect_err(|e| eprintln!("error: {e}"))?;
    Ok(report_median("prom-codegen build", &samples))
}

/// The `prom-codegen` binary built from this source tree.
fn prom_cli() -> Result<PathBuf, String> {
    // Cargo sets this for benches when it builds the binary along with them.
    if let Some(path) = option_env!("CARGO_BIN_EXE_prom-codegen").map(PathBuf::from).filter(|p| p.is_file()) {
        return Ok(path);
    }
    let sibling = || {
        let name = format!("prom-codegen{}", std::env::consts::EXE_SUFFIX);
        profile_dir().map(|dir| dir.join(name)).filter(|path| path.is_file())
    };
    if let Some(path) = sibling() {
        return Ok(path);
    }
    eprintln!("building the prom-codegen binary (cargo build --release -p prom-codegen)");
    let mut command = Command::new("cargo");
    command.args(["build", "--release", "-p", "prom-codegen", "--bin", "prom-codegen"]);
    command.current_dir(workspace_root());
    if let Some(target) = target_root() {
        command.env("CARGO_TARGET_DIR", target);
    }
    run_timed(&mut command)?;
    sibling().ok_or_else(|| "built prom-codegen, but cannot find it next to the bench executable".into())
}

/// `cargo typify` both ways: as `cargo typify <schema> -o out.rs` runs by default (with a builder
/// interface for every type) and with `--no-builder`, which generates what Prom and the
/// hand-written code have.
struct TypifyRun {
    default: Duration,
    no_builder: Duration,
    /// The `--no-builder` output, compiled in step 4.
    no_builder_out: PathBuf,
}

fn time_typify(inputs: &Inputs) -> Result<TypifyRun, String> {
    eprintln!("\n[3/4] cargo typify");
    ensure_typify(&inputs.dir).inspect_err(|e| eprintln!("{e}"))?;
    let default = typify_once(inputs, &[], "typify-out.rs")?;
    let no_builder_out = inputs.dir.join("typify-no-builder.rs");
    let no_builder = typify_once(inputs, &["--no-builder"], "typify-no-builder.rs")?;
    Ok(TypifyRun { default, no_builder, no_builder_out })
}

fn typify_once(inputs: &Inputs, flags: &[&str], out: &str) -> Measured {
    let samples = sample(3, 5, Duration::from_secs(60), || {
        let mut command = Command::new("cargo");
        command.arg("typify").args(flags).arg(&inputs.combined).arg("-o").arg(out).current_dir(&inputs.dir);
        run_timed(&mut command)
    })
    .inspect_err(|e| eprintln!("error: {e}"))?;
    let label = std::iter::once("cargo typify").chain(flags.iter().copied()).collect::<Vec<_>>().join(" ");
    Ok(report_median(&label, &samples))
}

/// Checks that `cargo typify` runs; installs it only when asked to (it takes minutes).
fn ensure_typify(dir: &Path) -> Result<(), String> {
    let installed = || {
        let mut command = Command::new("cargo");
        command.args(["typify", "--version"]).current_dir(dir);
        command.output().is_ok_and(|output| output.status.success())
    };
    if installed() {
        return Ok(());
    }
    if std::env::var("PROM_BENCH_INSTALL").as_deref() != Ok("1") {
        return Err(format!(
            "cargo-typify is not installed: skipping the typify comparison.\n  \
             install it with `{TYPIFY_INSTALL}`, or rerun with PROM_BENCH_INSTALL=1"
        ));
    }
    eprintln!("PROM_BENCH_INSTALL=1: running `{TYPIFY_INSTALL}`");
    let status =
        Command::new("cargo").args(["install", "cargo-typify", "--locked"]).current_dir(dir).status();
    match status {
        Ok(status) if status.success() && installed() => Ok(()),
        Ok(status) => Err(format!("`{TYPIFY_INSTALL}` failed ({status}); see its output above")),
        Err(error) => Err(format!("cannot run `{TYPIFY_INSTALL}`: {error}")),
    }
}

// ------------------------------------------------------------------------------------------------
// Compile time
// ------------------------------------------------------------------------------------------------

/// One crate of the throwaway workspace.
struct BenchCrate {
    package: &'static str,
    label: &'static str,
    source: String,
}

/// One build's wall time, and the CPU time of Cargo and rustc where the OS reports it: on a
/// shared machine CPU time is far less disturbed by other work than wall time.
#[derive(Debug, Clone, Copy)]
struct BuildTime {
    wall: Duration,
    cpu: Option<Duration>,
}

/// A crate's median build time (or why there is none) and its source size.
struct CompileResult {
    label: &'static str,
    lines: usize,
    time: Result<BuildTime, String>,
}

fn bench_crates(topics: &[Topic], prom: &PromRun, typify: &Result<TypifyRun, String>) -> Vec<BenchCrate> {
    let mut crates = vec![BenchCrate {
        package: "bench-handwritten",
        label: "hand-written",
        source: handwritten_crate(topics),
    }];
    if let Ok((_, source)) = prom {
        crates.push(BenchCrate {
            package: "bench-generated",
            label: "prom generated",
            source: source.clone(),
        });
    }
    match typify.as_ref().map(|run| std::fs::read_to_string(&run.no_builder_out)) {
        Ok(Ok(source)) => {
            crates.push(BenchCrate { package: "bench-typify", label: "typify (no builder)", source })
        }
        Ok(Err(error)) => eprintln!("error: cannot read typify's output: {error}"),
        Err(_) => {}
    }
    crates
}

fn compile_times(scratch: &Path, crates: Vec<BenchCrate>) -> Vec<CompileResult> {
    eprintln!("\n[4/4] compile time: one build of each crate's own code, median of {COMPILE_ROUNDS}");
    let workspace = scratch.join("compile");
    if let Err(error) = write_workspace(&workspace, &crates) {
        eprintln!("error: cannot write the throwaway workspace: {error}");
        return Vec::new();
    }
    let target = compile_target_dir(scratch);
    let result = |krate: &BenchCrate, time| CompileResult {
        label: krate.label,
        lines: krate.source.lines().count(),
        time,
    };
    // The first crate (the hand-written one, the smallest) builds the shared dependencies once, in
    // one target directory, so every timed build after it compiles only one crate's own code.
    let Some(first) = crates.first() else { return Vec::new() };
    eprintln!("building the shared dependencies (with {}) into {}", first.package, target.display());
    match cargo_build(&workspace, &target, first.package) {
        Ok(time) => eprintln!("  done in {:.1} s", time.wall.as_secs_f64()),
        Err(error) => {
            eprintln!("error: {error}");
            return crates.iter().map(|krate| result(krate, Err(error.clone()))).collect();
        }
    }
    let samples = timed_builds(&workspace, &target, &crates);
    crates.iter().zip(samples).map(|(krate, samples)| result(krate, samples.map(median_build))).collect()
}

/// Rounds of touch-and-build, interleaved so that a noisy phase of the machine hits every crate
/// alike. A crate's first build in round 1 is the same work as a rebuild (its dependencies are
/// built already), so it counts.
fn timed_builds(
    workspace: &Path,
    target: &Path,
    crates: &[BenchCrate],
) -> Vec<Result<Vec<BuildTime>, String>> {
    let mut samples: Vec<Result<Vec<BuildTime>, String>> = crates.iter().map(|_| Ok(Vec::new())).collect();
    for round in 1..=COMPILE_ROUNDS {
        for (krate, samples) in crates.iter().zip(&mut samples) {
            // A crate that failed to build is not tried again.
            let Ok(done) = samples else { continue };
            let lib = workspace.join(krate.package).join("src/lib.rs");
            match touch(&lib).and_then(|()| cargo_build(workspace, target, krate.package)) {
                Ok(time) => {
                    eprintln!("  round {round}: {:<20} {}", krate.label, format_build(time));
                    done.push(time);
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    *samples = Err(error);
                }
            }
        }
    }
    samples
}

fn median_build(samples: Vec<BuildTime>) -> BuildTime {
    let cpu: Option<Vec<Duration>> = samples.iter().map(|s| s.cpu).collect();
    BuildTime { wall: median(samples.iter().map(|s| s.wall).collect()), cpu: cpu.map(median) }
}

fn format_build(time: BuildTime) -> String {
    let cpu = time.cpu.map_or_else(String::new, |cpu| format!("   {:>6.2} s CPU", cpu.as_secs_f64()));
    format!("{:>6.2} s wall{cpu}", time.wall.as_secs_f64())
}

fn write_workspace(dir: &Path, crates: &[BenchCrate]) -> Result<(), String> {
    let members: Vec<String> = crates.iter().map(|c| format!("{:?}", c.package)).collect();
    let manifest = format!(
        "[workspace]\nresolver = \"3\"\nmembers = [{}]\n\n\
         # Like Prom's workspace: dependencies without debug info.\n\
         [profile.dev.package.\"*\"]\ndebug = false\n",
        members.join(", ")
    );
    write_file(&dir.join("Cargo.toml"), &manifest)?;
    // Prom's lock file pins the dependency versions Prom is tested with.
    let lock = workspace_root().join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .map_err(|e| format!("cannot copy `{}`: {e}", lock.display()))?;
    }
    let runtime = workspace_root().join("prom-runtime");
    for krate in crates {
        write_file(&dir.join(krate.package).join("Cargo.toml"), &crate_manifest(krate.package, &runtime))?;
        write_file(&dir.join(krate.package).join("src/lib.rs"), &krate.source)?;
    }
    Ok(())
}

/// Every crate gets the same dependencies, so only its own code differs.
fn crate_manifest(package: &str, runtime: &Path) -> String {
    let runtime = json!(runtime.display().to_string());
    format!(
        "[package]\nname = \"{package}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\n\
         prom-runtime = {{ path = {runtime}, default-features = false }}\n\
         serde = {{ version = \"1\", features = [\"derive\"] }}\n\
         serde_json = \"1\"\n\
         chrono = {{ version = \"0.4\", default-features = false, features = [\"std\", \"clock\", \"serde\"] }}\n"
    )
}

/// Kept next to the bench's own target directory when possible, so later runs reuse the
/// dependencies instead of building them again.
fn compile_target_dir(scratch: &Path) -> PathBuf {
    target_root().map_or_else(|| scratch.join("target"), |root| root.join("prom-codegen-bench"))
}

fn cargo_build(workspace: &Path, target: &Path, package: &str) -> Result<BuildTime, String> {
    let mut command = Command::new("cargo");
    command.args(["build", "-p", package]).current_dir(workspace);
    command.env("CARGO_TARGET_DIR", target).env_remove("CARGO_BUILD_TARGET_DIR");
    // Without this, a touched-but-unchanged crate is served from the incremental cache and the
    // rebuild measures almost nothing.
    command.env("CARGO_INCREMENTAL", "0").env("CARGO_TERM_COLOR", "never");
    let cpu_before = children_cpu_time();
    let wall = run_timed(&mut command)?;
    let cpu = children_cpu_time().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    Ok(BuildTime { wall, cpu })
}

/// User + system CPU time of this process's finished children (and theirs: Cargo waits for
/// rustc), from `/proc/self/stat` on Linux; `None` elsewhere.
fn children_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name start at field 3; cutime and cstime are 16, 17.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    // The kernel reports them in USER_HZ, which is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// Bumps the modification time so Cargo rebuilds the crate.
fn touch(path: &Path) -> Result<(), String> {
    let file = std::fs::File::options().append(true).open(path);
    file.and_then(|f| f.set_modified(SystemTime::now()))
        .map_err(|e| format!("cannot touch `{}`: {e}", path.display()))
}

// ------------------------------------------------------------------------------------------------
// Report
// ------------------------------------------------------------------------------------------------

struct Figures<'a> {
    schemas: usize,
    prom: &'a PromRun,
    cli: &'a Measured,
    typify: &'a Result<TypifyRun, String>,
    compile: &'a [CompileResult],
}

impl Figures<'_> {
    fn print(&self) {
        self.print_compile_details();
        println!("\ncodegen bench: {} topics × 3 versions = {} schemas", TOPICS, self.schemas);
        match self.prom {
            Ok((time, _)) => println!("  prom-codegen (in-process)   {}", self.per_schema(*time)),
            Err(_) => println!("  prom-codegen (in-process)   failed (see above)"),
        }
        match self.cli {
            Ok(time) => println!("  prom-codegen build (CLI)    {}", self.per_schema(*time)),
            Err(_) => println!("  prom-codegen build (CLI)    failed (see above)"),
        }
        match self.typify {
            Ok(typify) => {
                println!(
                    "  cargo typify                {}",
                    self.versus_typify(typify.default, "target ≥ 10×")
                );
                println!(
                    "  cargo typify --no-builder   {}",
                    self.versus_typify(typify.no_builder, "same output shape")
                );
            }
            Err(_) => {
                println!("  cargo typify                not measured (`{TYPIFY_INSTALL}`, or see above)")
            }
        }
        println!("  compile: {}", self.compile_line());
    }

    fn per_schema(&self, time: Duration) -> String {
        let per_schema = time.as_secs_f64() * 1e6 / self.schemas as f64;
        format!("{:>8.1} ms   ({per_schema:.0} µs/schema)", time.as_secs_f64() * 1e3)
    }

    fn versus_typify(&self, typify: Duration, note: &str) -> String {
        let mut line = self.per_schema(typify);
        if let Ok(cli) = self.cli {
            line += &format!("   → prom (CLI) is {} per schema ({note})", speed(ratio(typify, *cli)));
        }
        if let Ok((in_process, _)) = self.prom {
            line += &format!("; in-process {}", speed(ratio(typify, *in_process)));
        }
        line
    }

    fn compile_line(&self) -> String {
        let time =
            |label: &str| self.compile.iter().find(|c| c.label == label).and_then(|c| c.time.clone().ok());
        let Some(handwritten) = time("hand-written") else {
            return "not measured (see above)".into();
        };
        let versus = |label: &str| {
            let Some(t) = time(label) else { return "n/a".to_owned() };
            let cpu = t
                .cpu
                .zip(handwritten.cpu)
                .map_or_else(String::new, |(cpu, base)| format!(" (CPU {:.2}×)", ratio(cpu, base)));
            format!("{:.2}×{cpu}", ratio(t.wall, handwritten.wall))
        };
        format!(
            "generated / hand-written = {} [target ≤ 1.2×]   typify --no-builder / hand-written = {}",
            versus("prom generated"),
            versus("typify (no builder)")
        )
    }

    fn print_compile_details(&self) {
        if self.compile.is_empty() {
            return;
        }
        println!(
            "\ncompile time of each crate's own code (debug, non-incremental, median of {COMPILE_ROUNDS}):"
        );
        for result in self.compile {
            let time =
                result.time.as_ref().map_or_else(|_| "failed (see above)".into(), |t| format_build(*t));
            println!("  {:<20} {:>7} lines   {time}", result.label, result.lines);
        }
    }
}

/// `3.2× faster` or, below 1, `1.3× slower` (never "0.8× faster").
fn speed(ratio: f64) -> String {
    if ratio >= 1.0 { format!("{ratio:.1}× faster") } else { format!("{:.1}× slower", 1.0 / ratio) }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// Runs `measure` at least `min` and at most `max` times, stopping once `budget` is spent.
fn sample(
    min: usize,
    max: usize,
    budget: Duration,
    mut measure: impl FnMut() -> Measured,
) -> Result<Vec<Duration>, String> {
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < min || (samples.len() < max && start.elapsed() < budget) {
        samples.push(measure()?);
    }
    Ok(samples)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    match samples.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => samples[n / 2],
        n => (samples[n / 2 - 1] + samples[n / 2]) / 2,
    }
}

fn report_median(what: &str, samples: &[Duration]) -> Duration {
    let ms: Vec<String> = samples.iter().map(|d| format!("{:.1}", d.as_secs_f64() * 1e3)).collect();
    let median = median(samples.to_vec());
    eprintln!("  {what}: median {:.1} ms of [{}] ms", median.as_secs_f64() * 1e3, ms.join(", "));
    median
}

/// Runs a command to completion and returns its wall time; a failure names the command and
/// carries its exit status and the end of its stderr.
fn run_timed(command: &mut Command) -> Measured {
    let start = Instant::now();
    let output = command.output().map_err(|e| format!("cannot run `{}`: {e}", describe(command)))?;
    let elapsed = start.elapsed();
    check_output(command, &output)?;
    Ok(elapsed)
}

fn check_output(command: &Command, output: &Output) -> Result<(), String> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(60)..].join("\n");
    Err(format!("`{}` failed ({}); its stderr ends with:\n{tail}", describe(command), output.status))
}

fn describe(command: &Command) -> String {
    let args = command.get_args().map(|a| a.to_string_lossy().into_owned());
    std::iter::once(command.get_program().to_string_lossy().into_owned())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// Prom's workspace root (this crate's parent directory).
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `<target>/release`: the bench runs as `<target>/release/deps/codegen-<hash>`.
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.parent()?.parent().map(Path::to_path_buf)
}

fn target_root() -> Option<PathBuf> {
    profile_dir()?.parent().map(Path::to_path_buf)
}

/// The scratch directory; removed on drop unless `PROM_BENCH_KEEP` is set.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn create() -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("prom-codegen-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        Ok(Scratch { dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("PROM_BENCH_KEEP").is_some() {
            eprintln!("PROM_BENCH_KEEP is set: kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
