//! Inbound events: Stripe's `Stripe-Signature` scheme and the event body.
//!
//! The header is `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, possibly
//! with several `v1` (while a secret is being rolled) and other schemes (`v0`), which are
//! ignored. The signature is checked over the raw bytes before anything is parsed; only then is
//! the body read, and a PaymentIntent event becomes a claim about a charge that the domain still
//! checks against the recorded attempt.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use orderly_domain::payment::PaymentId;
use orderly_domain::ports::{ChargeState, EventRejected, ProviderCharge, ProviderEvent, ProviderEventKind};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use crate::answer::{self, WireIntent};

type HmacSha256 = Hmac<Sha256>;

/// A header longer than this is not Stripe's (it sends one `t` and one or two `v1`).
const MAX_SIGNATURE_HEADER_BYTES: usize = 4096;

/// Checks the signature and its age. Every way of failing is the same answer, so that a caller
/// learns nothing about which part was wrong.
pub(crate) fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secret: &SecretString,
    now: DateTime<Utc>,
    tolerance: chrono::Duration,
) -> Result<(), EventRejected> {
    let header =
        header.filter(|header| header.len() <= MAX_SIGNATURE_HEADER_BYTES).ok_or(EventRejected::InvalidSignature)?;
    let mut timestamp: Option<&str> = None;
    let mut candidates: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else { continue };
        match key {
            // Two timestamps: which one was signed is ambiguous.
            "t" if timestamp.is_some() => return Err(EventRejected::InvalidSignature),
            "t" => timestamp = Some(value),
            "v1" => candidates.extend(decode_hex_32(value)),
            _ => {}
        }
    }
    let raw_timestamp = timestamp.ok_or(EventRejected::InvalidSignature)?;
    let signed_at: i64 = raw_timestamp.parse().map_err(|_| EventRejected::InvalidSignature)?;
    if candidates.is_empty() {
        return Err(EventRejected::InvalidSignature);
    }

    let mut mac =
        HmacSha256::new_from_slice(secret.expose_secret().as_bytes()).map_err(|_| EventRejected::InvalidSignature)?;
    mac.update(raw_timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    if !candidates.iter().any(|candidate| mac.clone().verify_slice(candidate).is_ok()) {
        return Err(EventRejected::InvalidSignature);
    }

    let age = i128::from(now.timestamp()) - i128::from(signed_at);
    if age.abs() > i128::from(tolerance.num_seconds()) {
        return Err(EventRejected::InvalidSignature);
    }
    Ok(())
}

fn decode_hex_32(raw: &str) -> Option<[u8; 32]> {
    let raw = raw.as_bytes();
    if raw.len() != 64 {
        return None;
    }
    let mut bytes = [0_u8; 32];
    let (pairs, _) = raw.as_chunks::<2>();
    for (byte, [high, low]) in bytes.iter_mut().zip(pairs) {
        let high = char::from(*high).to_digit(16)?;
        let low = char::from(*low).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(bytes)
}

#[derive(Debug, Deserialize)]
struct WireEvent {
    id: String,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    data: Option<WireEventData>,
}

#[derive(Debug, Deserialize)]
struct WireEventData {
    object: serde_json::Value,
}

/// The PaymentIntent event types Orderly acts on, and the state each one reports.
fn expected_state(type_name: &str) -> Option<fn(&ChargeState) -> bool> {
    match type_name {
        "payment_intent.succeeded" => Some(|state| matches!(state, ChargeState::Succeeded)),
        "payment_intent.payment_failed" => Some(|state| matches!(state, ChargeState::Failed(_))),
        "payment_intent.canceled" => Some(|state| matches!(state, ChargeState::Canceled)),
        "payment_intent.processing" => Some(|state| matches!(state, ChargeState::Processing)),
        _ => None,
    }
}

/// Parses a verified body.
pub(crate) fn parse_event(body: &[u8]) -> Result<ProviderEvent, EventRejected> {
    let malformed = |why: &str| EventRejected::Malformed(why.to_owned());
    let event: WireEvent =
        serde_json::from_slice(body).map_err(|_| malformed("not an event object with id and type"))?;
    if !answer::is_provider_id(&event.id, "evt_") {
        return Err(malformed("the event id is not a Stripe event id"));
    }
    if event.type_name.is_empty() || event.type_name.len() > 255 {
        return Err(malformed("the event type is empty or too long"));
    }
    let Some(agrees) = expected_state(&event.type_name) else {
        return Ok(ProviderEvent { id: event.id, kind: ProviderEventKind::Other { type_name: event.type_name } });
    };

    let object = event.data.ok_or_else(|| malformed("a payment_intent event without data"))?.object;
    let intent: WireIntent =
        serde_json::from_value(object).map_err(|_| malformed("the event's object is not a PaymentIntent"))?;
    if intent.object != "payment_intent" || !answer::is_provider_id(&intent.id, "pi_") {
        return Err(malformed("the event's object is not a PaymentIntent"));
    }
    let state =
        answer::charge_state(&intent).map_err(|_| malformed("the PaymentIntent's status is not one Orderly uses"))?;
    if !agrees(&state) {
        return Err(malformed("the event type contradicts the PaymentIntent's status"));
    }
    let payment_id = intent.metadata.as_ref().and_then(|metadata| metadata.get(answer::METADATA_PAYMENT_ID)).and_then(
        |raw| match uuid::Uuid::parse_str(raw) {
            Ok(id) => Some(PaymentId::from_uuid(id)),
            Err(_) => {
                // Not one of Orderly's: the domain finds the attempt by reference, or ignores it.
                tracing::warn!(event_id = %event.id, "a PaymentIntent event names an attempt id that is not a UUID");
                None
            }
        },
    );
    Ok(ProviderEvent {
        id: event.id,
        kind: ProviderEventKind::Charge {
            charge: ProviderCharge { reference: intent.id, state },
            payment_id,
            amount: intent.amount,
            // The domain's currencies are upper-case ISO 4217; Stripe's are lower-case.
            currency: intent.currency.to_ascii_uppercase(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";

    fn sign(timestamp: i64, body: &[u8], secret: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn verify(header: Option<&str>, body: &[u8], now: i64) -> Result<(), EventRejected> {
        verify_signature(
            header,
            body,
            &SecretString::from(SECRET),
            DateTime::from_timestamp(now, 0).unwrap(),
            chrono::Duration::minutes(5),
        )
    }

    #[test]
    fn the_stripe_signature_header_is_checked_strictly() {
        let body = br#"{"id":"evt_1","type":"x"}"#;
        let t = 1_800_000_000;
        let good = sign(t, body, SECRET);
        let bad = sign(t, body, "whsec_other");
        assert_eq!(verify(Some(&format!("t={t},v1={good}")), body, t), Ok(()));
        assert_eq!(verify(Some(&format!("t={t},v1={bad},v1={good},v0=abc")), body, t + 299), Ok(()));
        assert_eq!(verify(Some(&format!("t={t},v1={good}")), body, t - 299), Ok(()));
        for header in [
            format!("t={t},v1={bad}"),
            format!("v1={good}"),
            format!("t={t}"),
            format!("t={t},v0={good}"),
            format!("t={t},t={t},v1={good}"),
            format!("t=abc,v1={good}"),
            format!("t={},v1={good}", t + 1),
            format!("t={t},v1={}", good.to_uppercase().replace(|c: char| c.is_ascii_digit(), "g")),
            String::new(),
        ] {
            assert_eq!(verify(Some(&header), body, t), Err(EventRejected::InvalidSignature), "{header}");
        }
        assert_eq!(verify(None, body, t), Err(EventRejected::InvalidSignature));
        assert_eq!(verify(Some(&format!("t={t},v1={good}")), b"{}", t), Err(EventRejected::InvalidSignature));
        assert_eq!(verify(Some(&format!("t={t},v1={good}")), body, t + 301), Err(EventRejected::InvalidSignature));
        assert_eq!(verify(Some(&format!("t={t},v1={good}")), body, t - 301), Err(EventRejected::InvalidSignature));
    }

    #[test]
    fn upper_case_hex_signatures_are_accepted() {
        let body = b"{}";
        let good = sign(5, body, SECRET).to_uppercase();
        assert_eq!(verify(Some(&format!("t=5,v1={good}")), body, 5), Ok(()));
    }

    #[test]
    fn payment_intent_events_become_charge_claims() {
        let payment_id = PaymentId::new();
        let body = serde_json::json!({
            "id": "evt_1", "type": "payment_intent.payment_failed",
            "data": {"object": {
                "id": "pi_1", "object": "payment_intent", "status": "requires_payment_method",
                "amount": 1200, "currency": "eur",
                "metadata": {"orderly_payment_id": payment_id.to_string()},
                "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
            }},
        });
        let event = parse_event(body.to_string().as_bytes()).unwrap();
        assert_eq!(event.id, "evt_1");
        let ProviderEventKind::Charge { charge, payment_id: claimed, amount, currency } = event.kind else {
            panic!("not a charge event: {event:?}")
        };
        assert_eq!(charge.reference, "pi_1");
        assert!(matches!(charge.state, ChargeState::Failed(ref failure) if failure.code == "card_declined"));
        assert_eq!((claimed, amount, currency.as_str()), (Some(payment_id), 1200, "EUR"));
    }

    #[test]
    fn other_and_malformed_events() {
        let other = parse_event(br#"{"id":"evt_2","type":"charge.refunded","data":{"object":{}}}"#).unwrap();
        assert_eq!(other.kind, ProviderEventKind::Other { type_name: "charge.refunded".into() });
        for body in [
            &b"not json"[..],
            br#"{"type":"payment_intent.succeeded"}"#,
            br#"{"id":"evt_3"}"#,
            br#"{"id":"x","type":"charge.refunded"}"#,
            br#"{"id":"evt_4","type":"payment_intent.succeeded"}"#,
            br#"{"id":"evt_5","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#,
            br#"{"id":"evt_6","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","object":"payment_intent","status":"canceled","amount":1,"currency":"eur"}}}"#,
        ] {
            assert!(
                matches!(parse_event(body), Err(EventRejected::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
