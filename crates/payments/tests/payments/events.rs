//! Signed events as the server's `POST /v1/payment-events` hands them over.

use chrono::{DateTime, Utc};
use orderly_domain::payment::PaymentId;
use orderly_domain::ports::{ChargeState, EventRejected, PaymentProvider, ProviderEventKind};
use orderly_payments::testing::{StubProvider, sign_event};
use serde_json::json;

use crate::fixtures::{WEBHOOK_SECRET, provider};

const NOW: i64 = 1_800_000_000;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).unwrap()
}

fn succeeded_event(payment_id: PaymentId) -> Vec<u8> {
    json!({
        "id": "evt_1Abc", "object": "event", "type": "payment_intent.succeeded", "created": NOW,
        "data": {"object": {
            "id": "pi_1Abc", "object": "payment_intent", "status": "succeeded", "amount": 4200, "currency": "eur",
            "metadata": {"orderly_payment_id": payment_id.to_string()},
        }},
    })
    .to_string()
    .into_bytes()
}

fn offline_provider() -> orderly_payments::StripeProvider {
    // Verifying an event makes no request: the provider need not be reachable.
    provider(&StubProvider::refused_api_base(), std::time::Duration::from_secs(1))
}

#[test]
fn a_correctly_signed_payment_intent_event_is_a_charge_claim() {
    let payment_id = PaymentId::new();
    let body = succeeded_event(payment_id);
    let header = sign_event(WEBHOOK_SECRET, NOW, &body);

    let event = offline_provider().verify_event(Some(&header), &body, now()).unwrap();

    assert_eq!(event.id, "evt_1Abc");
    match event.kind {
        ProviderEventKind::Charge { charge, payment_id: claimed, amount, currency } => {
            assert_eq!(charge.reference, "pi_1Abc");
            assert_eq!(charge.state, ChargeState::Succeeded);
            assert_eq!(claimed, Some(payment_id));
            assert_eq!((amount, currency.as_str()), (4200, "EUR"));
        }
        other => panic!("not a charge event: {other:?}"),
    }
}

#[test]
fn wrong_missing_or_stale_signatures_are_rejected() {
    let provider = offline_provider();
    let body = succeeded_event(PaymentId::new());
    let good = sign_event(WEBHOOK_SECRET, NOW, &body);
    let other_secret = sign_event("whsec_someone_else", NOW, &body);
    let v1 = |header: &str| header.split_once(",v1=").unwrap().1.to_owned();

    let rejected = |header: Option<&str>, body: &[u8], now: DateTime<Utc>| {
        assert_eq!(
            provider.verify_event(header, body, now).map(|event| event.id),
            Err(EventRejected::InvalidSignature),
            "{header:?}"
        );
    };
    rejected(Some(&other_secret), &body, now());
    rejected(None, &body, now());
    rejected(Some(""), &body, now());
    rejected(Some(&format!("v1={}", v1(&good))), &body, now());
    rejected(Some(&good), &succeeded_event(PaymentId::new()), now());
    rejected(Some(&good), &body, now() + chrono::Duration::minutes(6));
    rejected(Some(&good), &body, now() - chrono::Duration::minutes(6));
    rejected(Some(&format!("t={NOW},v1={},v1={}", v1(&other_secret), v1(&other_secret))), &body, now());

    // Several v1 (a secret being rolled): one that matches is enough.
    let rolled = format!("t={NOW},v1={},v1={},v0=legacy", v1(&other_secret), v1(&good));
    assert!(provider.verify_event(Some(&rolled), &body, now()).is_ok());
    assert!(provider.verify_event(Some(&good), &body, now() + chrono::Duration::minutes(4)).is_ok());
}

#[test]
fn signed_bodies_that_are_not_events_are_malformed_and_other_types_are_acknowledged() {
    let provider = offline_provider();
    for body in [
        &b"{not json"[..],
        br#"{"type": "payment_intent.succeeded"}"#,
        br#"{"id": "evt_1"}"#,
        br#"{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}}"#,
    ] {
        let header = sign_event(WEBHOOK_SECRET, NOW, body);
        assert!(
            matches!(provider.verify_event(Some(&header), body, now()), Err(EventRejected::Malformed(_))),
            "{}",
            String::from_utf8_lossy(body)
        );
    }

    let body = br#"{"id": "evt_2", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}"#;
    let header = sign_event(WEBHOOK_SECRET, NOW, body);
    let event = provider.verify_event(Some(&header), body, now()).unwrap();
    assert_eq!(event.kind, ProviderEventKind::Other { type_name: "customer.created".to_owned() });
}
