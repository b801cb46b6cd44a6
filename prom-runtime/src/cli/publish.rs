//! `prom publish`.

use super::{Failure, Outcome, SpecArgs};
use crate::publish::PublishOptions;

/// Arguments of `prom publish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Topic to publish to.
    topic: String,
    /// The payload, as JSON.
    json: String,
    /// A custom header `NAME=VALUE` (declared in the topic's `headers:`); repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
}

/// Lints, validates and publishes; prints the event id.
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (_, registry) = super::load(&args.spec)?;
    let payload: serde_json::Value = serde_json::from_str(&args.json).map_err(|e| {
        Failure::Runtime(format!(
            "the payload is not valid JSON ({e}); quote it for the shell, e.g. '{{\"pid\": 1}}'"
        ))
    })?;
    let mut opts = PublishOptions::default();
    for header in &args.headers {
        let (name, value) = header
            .split_once('=')
            .ok_or_else(|| Failure::Runtime(format!("--header `{header}` is not NAME=VALUE")))?;
        opts.headers.insert(name.to_string(), value.to_string());
    }
    // Validate before touching the store, so a bad payload leaves no trace at all.
    crate::publish::prepare(&registry, &args.topic, payload.clone(), &opts)?;
    let producer = super::open(target, registry).await?;
    let receipt = producer.publish(&args.topic, payload, opts).await?;
    println!("{}", receipt.id);
    Ok(())
}
