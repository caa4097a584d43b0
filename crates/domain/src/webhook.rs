//! Webhooks (docs/api.md#webhooks): endpoints that subscribers register, and the deliveries of feed events to
//! them.
//!
//! Owns what an endpoint may be (its URL passes the [`DestinationPolicy`], its event-type
//! filter names known types), what a delivery is and how it moves (`pending` → `succeeded` or
//! `failed`), and the retry schedule. Must not touch: HTTP, DNS, signing or storage — the
//! [`crate::ports::WebhookSender`] sends (and re-checks every resolved address with the same
//! policy), the [`crate::ports::WebhookRepository`] stores.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;

use crate::event::EVENT_TYPES;
use crate::id::uuid_id;
use crate::validation::{FieldViolation, InvalidValue};

uuid_id!(
    /// A webhook endpoint's id.
    WebhookEndpointId
);

uuid_id!(
    /// One delivery: one event to one endpoint, however many attempts it takes. Also the
    /// subject of its `deliver_webhook` job.
    WebhookDeliveryId
);

/// The longest endpoint URL accepted, in bytes.
pub const MAX_URL_LENGTH: usize = 2048;
/// The longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

// ---------------------------------------------------------------------------------------------
// Where deliveries may go: the SSRF guard
// ---------------------------------------------------------------------------------------------

/// Which destinations a delivery may be sent to. The one place that decides it: the service
/// applies it when an endpoint is saved, the sender again to every address a name resolves to,
/// at every delivery (DNS can change between the two).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DestinationPolicy {
    /// Plain `http` URLs are accepted (development and tests); otherwise only `https`.
    pub allow_http: bool,
    /// Networks that are allowed although they are in a refused range (e.g. `10.1.0.0/16` for
    /// receivers inside the deployment's own network, `127.0.0.0/8` in tests).
    pub allowed_networks: Vec<IpNet>,
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationRefused {
    #[error("the URL is not a valid absolute URL")]
    Malformed,
    #[error("the URL must use https")]
    SchemeNotAllowed,
    #[error("the URL must not carry a user name or password")]
    CredentialsInUrl,
    #[error("the URL must not have a fragment")]
    Fragment,
    #[error("the URL is longer than {MAX_URL_LENGTH} bytes")]
    TooLong,
    #[error("{0} is a {1} address, which webhooks may not target")]
    Address(IpAddr, AddressKind),
}

/// The kinds of address a delivery is refused, unless an allowed network contains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Loopback,
    Private,
    LinkLocal,
    Multicast,
    Unspecified,
    /// Other ranges that are not the public internet: `0.0.0.0/8`, the carrier-grade NAT
    /// range `100.64.0.0/10`, broadcast, IPv4 reserved `240.0.0.0/4`.
    Reserved,
}

impl std::fmt::Display for AddressKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddressKind::Loopback => "loopback",
            AddressKind::Private => "private",
            AddressKind::LinkLocal => "link-local",
            AddressKind::Multicast => "multicast",
            AddressKind::Unspecified => "unspecified",
            AddressKind::Reserved => "reserved",
        })
    }
}

impl DestinationPolicy {
    /// Checks an endpoint URL: absolute, `https` (or `http` when allowed), no credentials, no
    /// fragment, and — when its host is an IP address, or `localhost` — an allowed address.
    /// A host name is checked again, address by address, when a delivery resolves it.
    pub fn check_url(&self, raw: &str) -> Result<EndpointUrl, DestinationRefused> {
        self.check(raw)
    }

    /// [`Self::check_url`] for the `url` field of a request: the refusal as a violation with
    /// its code (`invalid_format`, `too_long`, `invalid_value`, `forbidden_destination`).
    pub fn check_url_field(&self, raw: &str) -> Result<EndpointUrl, FieldViolation> {
        self.check(raw).map_err(|refused| {
            let code = match refused {
                DestinationRefused::Malformed => "invalid_format",
                DestinationRefused::TooLong => "too_long",
                DestinationRefused::SchemeNotAllowed
                | DestinationRefused::CredentialsInUrl
                | DestinationRefused::Fragment => "invalid_value",
                DestinationRefused::Address(..) => "forbidden_destination",
            };
            FieldViolation::new("url", code, refused.to_string())
        })
    }

    fn check(&self, raw: &str) -> Result<EndpointUrl, DestinationRefused> {
        if raw.len() > MAX_URL_LENGTH {
            return Err(DestinationRefused::TooLong);
        }
        let url = url::Url::parse(raw).map_err(|_| DestinationRefused::Malformed)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err(DestinationRefused::SchemeNotAllowed),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationRefused::CredentialsInUrl);
        }
        if url.fragment().is_some() {
            return Err(DestinationRefused::Fragment);
        }
        match url.host() {
            None => return Err(DestinationRefused::Malformed),
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip))?,
            Some(url::Host::Domain(name)) => {
                // Resolved by every system to loopback without asking DNS (RFC 6761).
                let name = name.trim_end_matches('.');
                if name == "localhost" || name.ends_with(".localhost") {
                    self.check_address(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
                }
            }
        }
        Ok(EndpointUrl(url.to_string()))
    }

    /// Checks one address a delivery is about to connect to.
    pub fn check_address(&self, address: IpAddr) -> Result<(), DestinationRefused> {
        match classify(address) {
            Some(kind) if !self.allowed_networks.iter().any(|network| network.contains(&address)) => {
                Err(DestinationRefused::Address(address, kind))
            }
            _ => Ok(()),
        }
    }
}

/// The refused kind `address` belongs to, if any. An IPv6 address that embeds an IPv4 one
/// (mapped `::ffff:a.b.c.d`, or NAT64 `64:ff9b::a.b.c.d`) is judged by the IPv4 address, so
/// `::ffff:127.0.0.1` is loopback.
pub fn classify(address: IpAddr) -> Option<AddressKind> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() {
        Some(AddressKind::Unspecified)
    } else if ip.is_loopback() {
        Some(AddressKind::Loopback)
    } else if ip.is_private() {
        Some(AddressKind::Private)
    } else if ip.is_link_local() {
        Some(AddressKind::LinkLocal)
    } else if ip.is_multicast() {
        Some(AddressKind::Multicast)
    } else if a == 0 || (a == 100 && (64..128).contains(&b)) || ip.is_broadcast() || a >= 240 {
        Some(AddressKind::Reserved)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressKind> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some(AddressKind::Unspecified)
    } else if ip.is_loopback() {
        Some(AddressKind::Loopback)
    } else if ip.is_multicast() {
        Some(AddressKind::Multicast)
    } else if first & 0xffc0 == 0xfe80 {
        Some(AddressKind::LinkLocal)
    } else if first & 0xfe00 == 0xfc00 {
        // Unique local addresses, fc00::/7: IPv6's private range.
        Some(AddressKind::Private)
    } else {
        None
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`) or
/// NAT64 (`64:ff9b::/96`) IPv6 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = ip.segments();
    let v4 = Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32);
    match segments {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(v4),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_unspecified() && !ip.is_loopback() => Some(v4),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(v4),
        _ => None,
    }
}

/// An endpoint URL that passed the [`DestinationPolicy`] when it was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(String);

impl EndpointUrl {
    /// A URL read back from storage: it passed the policy when it was saved, and the sender
    /// checks it again before every delivery.
    pub fn from_stored(url: String) -> Self {
        Self(url)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/// The secret an endpoint's deliveries are signed with: `whsec_` and base64 (Standard
/// Webhooks). Shown to the admin once, when the endpoint is created; never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn from_stored(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Which event types an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EventTypeFilter {
    /// Every type, including types added later.
    #[default]
    All,
    /// Only these (known, distinct, at least one).
    Only(Vec<&'static str>),
}

impl EventTypeFilter {
    /// `None` is every type. A list must name at least one known type, each once; every fault
    /// is reported, at `event_types/<index>`.
    pub fn parse(raw: Option<&[String]>) -> Result<Self, Vec<FieldViolation>> {
        let Some(raw) = raw else { return Ok(EventTypeFilter::All) };
        if raw.is_empty() {
            return Err(vec![FieldViolation::new(
                "event_types",
                "too_short",
                "must name at least one event type; leave it out to receive every type",
            )]);
        }
        let mut types = Vec::with_capacity(raw.len());
        let mut violations = Vec::new();
        for (index, name) in raw.iter().enumerate() {
            let at = |code, message: String| FieldViolation {
                path: vec!["event_types".to_owned(), index.to_string()],
                code,
                message,
            };
            match EVENT_TYPES.into_iter().find(|known| known == name) {
                None => violations.push(at("invalid_value", format!("must be one of: {}", EVENT_TYPES.join(", ")))),
                Some(known) if types.contains(&known) => {
                    violations.push(at("duplicate", format!("{known} is listed twice")))
                }
                Some(known) => types.push(known),
            }
        }
        if violations.is_empty() { Ok(EventTypeFilter::Only(types)) } else { Err(violations) }
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            EventTypeFilter::All => true,
            EventTypeFilter::Only(types) => types.contains(&event_type),
        }
    }

    /// The stored/represented form: `None` for every type.
    pub fn types(&self) -> Option<&[&'static str]> {
        match self {
            EventTypeFilter::All => None,
            EventTypeFilter::Only(types) => Some(types),
        }
    }
}

/// An endpoint's free-text description: trimmed, at most [`MAX_DESCRIPTION_CHARS`] characters.
pub fn parse_description(raw: &str) -> Result<String, InvalidValue> {
    let text = raw.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(InvalidValue::new("too_long", format!("must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(InvalidValue::new("invalid_format", "must not contain control characters"));
    }
    Ok(text.to_owned())
}

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub url: EndpointUrl,
    pub event_types: EventTypeFilter,
    pub description: Option<String>,
    /// A disabled endpoint is sent nothing: no delivery is created for it, and its pending
    /// ones end `failed` when their turn comes.
    pub active: bool,
    pub secret: WebhookSecret,
    /// Grows with every change (strong ETags, `If-Match`).
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    /// Whether a delivery of `event_type`, which occurred at `occurred_at`, is due to it: it is
    /// active, the filter lets the type through, and the event is not older than the endpoint
    /// (a new endpoint is sent what happens from then on, not the history).
    pub fn wants(&self, event_type: &str, occurred_at: DateTime<Utc>) -> bool {
        self.active && self.event_types.matches(event_type) && occurred_at >= self.created_at
    }
}

/// An endpoint to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEndpoint {
    pub id: WebhookEndpointId,
    pub url: EndpointUrl,
    pub event_types: EventTypeFilter,
    pub description: Option<String>,
    pub secret: WebhookSecret,
    pub created_at: DateTime<Utc>,
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookEndpointUpdate {
    pub url: Option<EndpointUrl>,
    pub event_types: Option<EventTypeFilter>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
}

impl WebhookEndpointUpdate {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `GET /v1/webhook-endpoints`: oldest first, after an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookEndpointQuery {
    pub after: Option<WebhookEndpointId>,
    pub limit: crate::pagination::PageLimit,
}

// ---------------------------------------------------------------------------------------------
// Deliveries
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not delivered yet; an attempt is due at `next_attempt_at`.
    Pending,
    /// A 2xx answer arrived in time.
    Succeeded,
    /// Every attempt of the schedule failed (or the endpoint was disabled, or the event is
    /// gone); a manual retry makes it pending again.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [DeliveryStatus::Pending, DeliveryStatus::Succeeded, DeliveryStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw)
    }
}

/// One event's delivery to one endpoint, as the log shows it: where it stands and how its
/// latest attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: WebhookDeliveryId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Attempts made so far (0 before the first).
    pub attempts: u32,
    /// The latest attempt's HTTP status, if an answer came.
    pub response_status: Option<u16>,
    /// How long the latest attempt took, in milliseconds.
    pub duration_ms: Option<u32>,
    /// Why the latest attempt failed, in words (no answer, refused destination, ...).
    pub error: Option<String>,
    /// When the next attempt is due (`pending` only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A delivery to create, when the dispatcher matches an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookDelivery {
    pub id: WebhookDeliveryId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
}

/// What one attempt came to, to record on its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// Whether a request was sent: only then does the delivery's attempt count grow (a
    /// delivery given up on because its endpoint was disabled made no attempt).
    pub sent: bool,
    /// The delivery's status after this attempt.
    pub status: DeliveryStatus,
    pub response_status: Option<u16>,
    pub duration_ms: u32,
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// `GET /v1/webhook-endpoints/{id}/deliveries`: newest first, after a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub endpoint_id: WebhookEndpointId,
    pub after: Option<WebhookDeliveryId>,
    pub limit: crate::pagination::PageLimit,
}

/// The deliveries still to make, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryBacklog {
    pub pending: u64,
    /// How long ago the oldest pending delivery was created.
    pub oldest_pending_age: Option<Duration>,
}

/// The waits between attempts: after attempt *n* fails, attempt *n + 1* is due after the
/// *n*-th wait (with jitter); after the last wait's attempt fails, the delivery is `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    /// The default, Standard Webhooks' own suggestion: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 10 h — eight attempts over about 27.6 hours.
    pub fn standard() -> Self {
        Self(
            [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600].into_iter().map(Duration::seconds).collect(),
        )
    }

    /// Waits that are each positive; an empty schedule means one attempt only.
    pub fn new(waits: Vec<Duration>) -> Option<Self> {
        waits.iter().all(|wait| *wait > Duration::zero()).then_some(Self(waits))
    }

    pub fn waits(&self) -> &[Duration] {
        &self.0
    }

    /// The time from the first attempt to the last (without jitter).
    pub fn span(&self) -> Duration {
        self.0.iter().fold(Duration::zero(), |total, wait| total + *wait)
    }

    /// The wait before the attempt after attempt `attempt` (1-based) failed, or `None` when
    /// that was the last one. Jitter shortens the wait by up to a fifth, spread by `seed` (a
    /// delivery's id), so that deliveries that failed together are not all retried together.
    pub fn wait_after(&self, attempt: u32, seed: u128) -> Option<Duration> {
        let wait = *self.0.get(usize::try_from(attempt.checked_sub(1)?).ok()?)?;
        let millis = wait.num_milliseconds();
        let spread = i64::try_from(seed % 1_000).unwrap_or(0);
        Some(Duration::milliseconds(millis - millis / 5 * spread / 1_000))
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::standard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> DestinationPolicy {
        DestinationPolicy::default()
    }

    #[test]
    fn only_https_unless_http_is_allowed() {
        assert!(strict().check_url("https://hooks.example.com/orderly").is_ok());
        assert_eq!(strict().check_url("http://hooks.example.com/"), Err(DestinationRefused::SchemeNotAllowed));
        assert_eq!(strict().check_url("ftp://hooks.example.com/"), Err(DestinationRefused::SchemeNotAllowed));
        let relaxed = DestinationPolicy { allow_http: true, ..DestinationPolicy::default() };
        assert!(relaxed.check_url("http://hooks.example.com/").is_ok());
        assert_eq!(relaxed.check_url("ftp://hooks.example.com/"), Err(DestinationRefused::SchemeNotAllowed));
    }

    #[test]
    fn malformed_urls_credentials_and_fragments_are_refused() {
        assert_eq!(strict().check_url("not a url"), Err(DestinationRefused::Malformed));
        assert_eq!(strict().check_url("/relative"), Err(DestinationRefused::Malformed));
        assert_eq!(strict().check_url("https://user:pw@hooks.example.com/"), Err(DestinationRefused::CredentialsInUrl));
        assert_eq!(strict().check_url("https://hooks.example.com/#x"), Err(DestinationRefused::Fragment));
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_LENGTH));
        assert_eq!(strict().check_url(&long), Err(DestinationRefused::TooLong));
    }

    #[test]
    fn every_refused_range_is_refused_in_a_url() {
        for (url, kind) in [
            ("https://127.0.0.1/", AddressKind::Loopback),
            ("https://127.1.2.3:8443/x", AddressKind::Loopback),
            ("https://[::1]/", AddressKind::Loopback),
            ("https://localhost/", AddressKind::Loopback),
            ("https://api.localhost./", AddressKind::Loopback),
            ("https://10.0.0.1/", AddressKind::Private),
            ("https://172.16.5.4/", AddressKind::Private),
            ("https://192.168.1.1/", AddressKind::Private),
            ("https://[fd00::1]/", AddressKind::Private),
            ("https://169.254.169.254/latest/meta-data/", AddressKind::LinkLocal),
            ("https://[fe80::1]/", AddressKind::LinkLocal),
            ("https://224.0.0.1/", AddressKind::Multicast),
            ("https://[ff02::1]/", AddressKind::Multicast),
            ("https://0.0.0.0/", AddressKind::Unspecified),
            ("https://[::]/", AddressKind::Unspecified),
            ("https://100.64.0.1/", AddressKind::Reserved),
            ("https://255.255.255.255/", AddressKind::Reserved),
            // Spellings that hide an address: mapped IPv6, decimal and hex IPv4.
            ("https://[::ffff:127.0.0.1]/", AddressKind::Loopback),
            ("https://[::ffff:169.254.169.254]/", AddressKind::LinkLocal),
            ("https://[64:ff9b::10.0.0.1]/", AddressKind::Private),
            ("https://2130706433/", AddressKind::Loopback),
            ("https://0x7f000001/", AddressKind::Loopback),
        ] {
            match strict().check_url(url) {
                Err(DestinationRefused::Address(_, refused)) => assert_eq!(refused, kind, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn public_addresses_pass() {
        for url in
            ["https://93.184.215.14/", "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", "https://8.8.8.8:8443/"]
        {
            assert!(strict().check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn an_allowed_network_lets_its_addresses_through_and_only_those() {
        let policy = DestinationPolicy {
            allow_http: true,
            allowed_networks: vec!["127.0.0.0/8".parse().unwrap(), "10.1.0.0/16".parse().unwrap()],
        };
        assert!(policy.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(policy.check_url("http://localhost:9000/hook").is_ok());
        assert!(policy.check_address("10.1.2.3".parse().unwrap()).is_ok());
        assert!(matches!(
            policy.check_address("10.2.0.1".parse().unwrap()),
            Err(DestinationRefused::Address(_, AddressKind::Private))
        ));
        assert!(matches!(
            policy.check_address("169.254.169.254".parse().unwrap()),
            Err(DestinationRefused::Address(_, AddressKind::LinkLocal))
        ));
    }

    #[test]
    fn event_type_filters() {
        assert_eq!(EventTypeFilter::parse(None), Ok(EventTypeFilter::All));
        let only = EventTypeFilter::parse(Some(&["order.confirmed".to_owned()])).unwrap();
        assert!(only.matches("order.confirmed"));
        assert!(!only.matches("order.placed"));
        assert!(EventTypeFilter::All.matches("order.placed"));
        let empty = EventTypeFilter::parse(Some(&[])).unwrap_err();
        assert_eq!(empty[0].path, ["event_types"]);
        let faults =
            EventTypeFilter::parse(Some(&["nope".to_owned(), "order.placed".to_owned(), "order.placed".to_owned()]))
                .unwrap_err();
        let at: Vec<_> = faults.iter().map(|fault| (fault.path.join("/"), fault.code)).collect();
        assert_eq!(at, [("event_types/0".to_owned(), "invalid_value"), ("event_types/2".to_owned(), "duplicate")]);
    }

    #[test]
    fn a_new_endpoint_wants_only_what_happens_after_it_and_only_while_active() {
        let created_at = Utc::now();
        let mut endpoint = WebhookEndpoint {
            id: WebhookEndpointId::new(),
            url: EndpointUrl::from_stored("https://hooks.example.com/".into()),
            event_types: EventTypeFilter::Only(vec!["order.placed"]),
            description: None,
            active: true,
            secret: WebhookSecret::from_stored("whsec_x".into()),
            version: 1,
            created_at,
            updated_at: created_at,
        };
        assert!(endpoint.wants("order.placed", created_at));
        assert!(!endpoint.wants("order.placed", created_at - Duration::seconds(1)));
        assert!(!endpoint.wants("order.confirmed", created_at));
        endpoint.active = false;
        assert!(!endpoint.wants("order.placed", created_at));
    }

    #[test]
    fn the_standard_schedule_retries_for_more_than_a_day_then_stops() {
        let schedule = RetrySchedule::standard();
        assert!(schedule.span() >= Duration::hours(24));
        assert_eq!(schedule.wait_after(1, 0), Some(Duration::seconds(5)));
        // Jitter shortens a wait by at most a fifth.
        let jittered = schedule.wait_after(2, 999).unwrap();
        assert!(jittered < Duration::minutes(5) && jittered >= Duration::minutes(4), "{jittered}");
        assert_eq!(schedule.wait_after(8, 0), None);
        assert_eq!(schedule.wait_after(0, 0), None);
        assert!(RetrySchedule::new(vec![Duration::zero()]).is_none());
        assert_eq!(RetrySchedule::new(vec![]).unwrap().wait_after(1, 0), None);
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        assert_eq!(format!("{:?}", WebhookSecret::from_stored("whsec_c2VjcmV0".into())), "WebhookSecret(..)");
    }
}
