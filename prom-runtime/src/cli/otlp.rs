//! The `prom` binary's OpenTelemetry export (feature `otel`): when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, its spans go to that OTLP collector over
//! HTTP/protobuf, batched on the SDK's own thread and flushed when the command ends. The other
//! standard variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SDK_DISABLED`) are honoured.

use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_subscriber::registry::LookupSpan;

/// The variables whose presence switches the export on.
const ENDPOINT_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"];

/// The running export: flushed and stopped by [`Export::shutdown`].
pub struct Export {
    provider: SdkTracerProvider,
}

/// The `tracing-opentelemetry` layer exporting over OTLP, and its export, when the environment
/// asks for one; a configuration the exporter refuses is reported and nothing is exported.
pub fn start<S>() -> Option<(tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>, Export)>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let set = |var: &str| std::env::var(var).is_ok_and(|value| !value.trim().is_empty());
    if !ENDPOINT_VARS.iter().any(|var| set(var))
        || std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => {
            // No subscriber is installed yet: this is the binary's own line, as for `PROM_LOG`.
            eprintln!("prom: not exporting spans over OTLP: {error}");
            return None;
        }
    };
    let mut resource = Resource::builder();
    let named_in_attributes = std::env::var("OTEL_RESOURCE_ATTRIBUTES")
        .is_ok_and(|attributes| attributes.contains("service.name="));
    if !set("OTEL_SERVICE_NAME") && !named_in_attributes {
        resource = resource.with_service_name("prom");
    }
    let provider =
        SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("prom"));
    Some((layer, Export { provider }))
}

impl Export {
    /// Exports the spans still queued and stops the exporter (outside the async runtime: the
    /// blocking HTTP client may not run inside it).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("prom: could not export the last spans over OTLP: {error}");
        }
    }
}
