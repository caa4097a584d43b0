//! Events, settings and senders the tests share.

use std::time::{Duration, Instant};

use chrono::{TimeZone as _, Utc};
use orderly_domain::event::FeedEvent;
use orderly_domain::ports::{SendReport, WebhookMessage, WebhookSender as _};
use orderly_domain::webhook::{DestinationPolicy, EndpointUrl, WebhookSecret};
use orderly_webhooks::testing::loopback_policy;
use orderly_webhooks::{HttpWebhookSender, SenderSettings};

/// A fixed secret (the standardwebhooks library's own test secret).
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const USER_AGENT: &str = "Orderly-Webhooks/test";

/// The payload, spelled so that any re-serialisation would show: keys out of order, `2.50`.
pub const DATA_JSON: &str = r#"{"order_id":"0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70","total":3000,"amount":2.50,"lines":[{"quantity":2,"product_id":"p1"}]}"#;

pub fn event() -> FeedEvent {
    FeedEvent {
        id: uuid::Uuid::now_v7(),
        position: 42,
        type_name: "order.placed".into(),
        occurred_at: Utc.timestamp_opt(1_795_456_445, 123_000_000).unwrap(),
        subject_type: "order".into(),
        subject_id: "0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70".into(),
        data_json: DATA_JSON.into(),
    }
}

/// The body `GET /v1/events` would show for `event`.
pub fn expected_body(event: &FeedEvent) -> String {
    format!(
        r#"{{"id":"{}","type":"order.placed","occurred_at":"2026-11-23T17:54:05.123Z","subject":{{"type":"order","id":"0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70"}},"data":{DATA_JSON}}}"#,
        event.id
    )
}

pub fn settings(policy: DestinationPolicy, timeout: Duration) -> SenderSettings {
    SenderSettings {
        timeout,
        connect_timeout: timeout.min(Duration::from_secs(1)),
        policy,
        user_agent: USER_AGENT.into(),
    }
}

/// A sender allowed to reach loopback over plain http, 5 s per attempt.
pub fn loopback_sender() -> HttpWebhookSender {
    HttpWebhookSender::new(settings(loopback_policy(), Duration::from_secs(5))).unwrap()
}

/// A policy that allows plain http but no refused range: loopback is refused.
pub fn strict_http_policy() -> DestinationPolicy {
    DestinationPolicy { allow_http: true, allowed_networks: Vec::new() }
}

/// Sends `event` to `url` with `secret`, and how long the call took, measured outside it.
pub fn send_with(sender: &HttpWebhookSender, url: &str, secret: &str, event: &FeedEvent) -> (SendReport, Duration) {
    let url = EndpointUrl::from_stored(url.to_owned());
    let secret = WebhookSecret::from_stored(secret.to_owned());
    let started = Instant::now();
    let report = sender.send(WebhookMessage { url: &url, secret: &secret, event });
    (report, started.elapsed())
}

pub fn send(sender: &HttpWebhookSender, url: &str, event: &FeedEvent) -> SendReport {
    send_with(sender, url, SECRET, event).0
}

/// Long enough for a request that was going to arrive to have arrived.
pub const SETTLE: Duration = Duration::from_millis(300);
