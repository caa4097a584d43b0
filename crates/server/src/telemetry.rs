//! Logging set-up: one subscriber for the process, JSON lines or human-readable text.
//!
//! Every log line emitted while a request is handled carries that request's span (request id,
//! method, route, user id), because the fmt layers below print the current span context.

use tracing::callsite::{Callsite, Identifier};
use tracing::field::{Field, FieldSet, Value, Visit};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber. An invalid filter falls back to `info` and says so, rather
/// than refusing to start over a log setting.
pub fn init(filter: &str, format: LogFormat) {
    let (env_filter, filter_error) = match EnvFilter::try_new(filter) {
        Ok(env_filter) => (env_filter, None),
        Err(error) => (EnvFilter::new("info"), Some(error)),
    };
    // The same filter decides whether a downgraded line is shown, as it would for any INFO line.
    let downgraded_filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(env_filter);
    let installed = match format {
        LogFormat::Json => registry
            .with(ClientFaultsAsInfo::new(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .flatten_event(true),
                downgraded_filter,
            ))
            .try_init(),
        LogFormat::Pretty => registry
            .with(ClientFaultsAsInfo::new(tracing_subscriber::fmt::layer().with_target(true), downgraded_filter))
            .try_init(),
    };
    // Tests and repeated CLI calls may find a subscriber already installed; that one stays.
    if installed.is_ok()
        && let Some(error) = filter_error
    {
        tracing::warn!(%error, filter, "ORDERLY_LOG is not a valid filter; logging at info");
    }
}

/// The target of actix-http's HTTP/1 connection lines.
const ACTIX_DISPATCHER: &str = "actix_http::h1::dispatcher";

/// How actix-http's dispatcher starts the ERROR line it logs when a connection ends in error.
const STREAM_ERROR: &str = "stream error: ";

/// The connection errors that are the client's doing (actix-http's `DispatchError` texts): a
/// request it could not parse (a malformed head or body framing), the socket failing under it
/// (a client that resets), a head that never completed, a body the handler did not need, a
/// client that does not close. The others — a response body that failed, a service or
/// internal error — are the server's and stay ERROR.
const CLIENT_FAULTS: [&str; 5] = [
    "request parse error",
    "I/O error",
    "request did not complete within the specified timeout",
    "handler dropped payload before reading EOF",
    "connection shutdown timeout",
];

/// Where the downgraded lines are logged (a filter directive can name it).
pub const CLIENT_FAULT_TARGET: &str = "orderly::client_fault";

/// Wraps the layer that writes log lines so that actix-http's ERROR lines about a client's
/// faults are written at INFO instead: a malformed request is the client's problem, not an
/// alarm for the operator. Nearly all of them are refused before actix sees them (the head
/// guard, ADR 0016, logs those at INFO with their request id); what is left is what only actix
/// sees, such as a malformed chunk inside a body. actix logs these from inside its dispatcher
/// with a fixed level and no hook, so the line is rewritten here: the ERROR event is not
/// written, an INFO event with the same text is, if the filter lets INFO lines of
/// [`CLIENT_FAULT_TARGET`] through.
pub struct ClientFaultsAsInfo<L> {
    inner: L,
    filter: EnvFilter,
}

impl<L> ClientFaultsAsInfo<L> {
    pub fn new(inner: L, filter: EnvFilter) -> Self {
        Self { inner, filter }
    }
}

/// The text of an actix connection error that is a client's fault, if `event` is one.
fn client_fault(event: &Event<'_>) -> Option<String> {
    let metadata = event.metadata();
    if *metadata.level() != Level::ERROR || !metadata.target().starts_with(ACTIX_DISPATCHER) {
        return None;
    }
    struct Message(Option<String>);
    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = Some(format!("{value:?}"));
            }
        }
    }
    let mut message = Message(None);
    event.record(&mut message);
    let message = message.0?;
    let error = message.strip_prefix(STREAM_ERROR)?;
    CLIENT_FAULTS.iter().any(|fault| error.starts_with(fault)).then(|| error.to_owned())
}

/// The INFO event a client fault is written as.
struct ClientFaultCallsite;
static CLIENT_FAULT_CALLSITE: ClientFaultCallsite = ClientFaultCallsite;
static CLIENT_FAULT_METADATA: Metadata<'static> = Metadata::new(
    "client fault",
    CLIENT_FAULT_TARGET,
    Level::INFO,
    Some(file!()),
    Some(line!()),
    Some(module_path!()),
    FieldSet::new(&["message", "error"], Identifier(&CLIENT_FAULT_CALLSITE)),
    Kind::EVENT,
);

impl Callsite for ClientFaultCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &CLIENT_FAULT_METADATA
    }
}

impl<S, L> Layer<S> for ClientFaultsAsInfo<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(error) = client_fault(event) else {
            return self.inner.on_event(event, ctx);
        };
        if !Layer::<S>::enabled(&self.filter, &CLIENT_FAULT_METADATA, ctx.clone()) {
            return;
        }
        let fields = CLIENT_FAULT_METADATA.fields();
        let (Some(message), Some(error_field)) = (fields.field("message"), fields.field("error")) else { return };
        let text = format_args!("a client's request ended its connection in error");
        let values = [(&message, Some(&text as &dyn Value)), (&error_field, Some(&error as &dyn Value))];
        let values = fields.value_set(&values);
        self.inner.on_event(&Event::new(&CLIENT_FAULT_METADATA, &values), ctx);
    }

    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON lines written while `emit` runs, with `filter`.
    fn logged(filter: &str, emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let layer = tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new(filter))
            .with(ClientFaultsAsInfo::new(layer, EnvFilter::new(filter)));
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    #[test]
    fn a_clients_malformed_request_is_info_and_a_server_fault_stays_error() {
        let lines = logged("info", || {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: invalid Header provided");
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: I/O error: Connection reset by peer");
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: body error: the stream failed");
            tracing::error!(target: "orderly_http", "stream error: request parse error: not actix's");
        });
        let levels: Vec<&str> = lines.iter().map(|line| line["level"].as_str().unwrap()).collect();
        assert_eq!(levels, ["INFO", "INFO", "ERROR", "ERROR"], "{lines:?}");
        assert_eq!(lines[0]["target"], CLIENT_FAULT_TARGET);
        assert_eq!(lines[0]["error"], "request parse error: invalid Header provided");
        assert_eq!(lines[2]["target"], "actix_http::h1::dispatcher");
    }

    #[test]
    fn a_downgraded_line_obeys_the_filter() {
        let lines = logged("warn", || {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: invalid Header provided");
        });
        assert!(lines.is_empty(), "{lines:?}");
        let lines = logged("warn,orderly::client_fault=info", || {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: invalid Header provided");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
    }
}
