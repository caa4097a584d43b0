//! Against a real localstripe: the requests Orderly sends are ones it accepts, and its answers
//! (successes, declines, refunds, signed webhooks) pass Orderly's checks.

use std::time::Duration;

use chrono::Utc;
use orderly_domain::payment::ExpectedCharge;
use orderly_domain::ports::{ChargeState, PaymentProvider, ProviderError, ProviderEventKind};
use orderly_payments::StripeProvider;
use orderly_payments::testing::{LocalStripe, ProxyFault, ProxyFaultKind, StubProvider, StubResponse};

use crate::fixtures::{WEBHOOK_SECRET, charge_request};

/// Declined when charged (localstripe's `_charging_is_declined`).
const DECLINED_CARD: &str = "4000000000000341";
/// Needs 3-D Secure (localstripe's `_requires_authentication`).
const AUTHENTICATION_CARD: &str = "4000002500003155";

fn provider(localstripe: &LocalStripe) -> StripeProvider {
    StripeProvider::new(localstripe.settings(WEBHOOK_SECRET)).unwrap()
}

/// A provider for `localstripe`'s key and secret, talking to `api_base` (a proxy in front of it).
fn provider_at(localstripe: &LocalStripe, api_base: &str) -> StripeProvider {
    let mut settings = localstripe.settings(WEBHOOK_SECRET);
    settings.api_base = api_base.to_owned();
    StripeProvider::new(settings).unwrap()
}

fn failure_code(state: &ChargeState) -> &str {
    match state {
        ChargeState::Failed(failure) => &failure.code,
        other => panic!("not failed: {other:?}"),
    }
}

#[test]
fn a_card_charge_is_created_confirmed_and_retrieved() {
    let Some(localstripe) = LocalStripe::start() else { return };
    let provider = provider(&localstripe);
    let request = charge_request(1999, "EUR", "pm_card_visa");

    let created = provider.create(&request).unwrap();
    assert_eq!(created.state, ChargeState::AwaitingConfirmation);
    assert!(created.reference.starts_with("pi_"), "{created:?}");

    let confirmed = provider.confirm(&created.reference, &request).unwrap();
    assert_eq!(confirmed.reference, created.reference);
    assert_eq!(confirmed.state, ChargeState::Succeeded);

    let retrieved = provider.retrieve(&created.reference, &request.expected).unwrap();
    assert_eq!(retrieved, confirmed);

    // What localstripe recorded: the amount, the currency and the metadata Orderly sent.
    let stored = localstripe.get_json(&format!("/v1/payment_intents/{}", created.reference));
    assert_eq!(stored["amount"], 1999);
    assert_eq!(stored["currency"], "eur");
    assert_eq!(stored["metadata"]["orderly_payment_id"], request.expected.payment_id.to_string());
    assert_eq!(stored["metadata"]["orderly_order_id"], request.order_id.to_string());
    assert_eq!(stored["metadata"]["request_id"], "req-fixture-1");

    // The same charge read as if it were for another amount or attempt is not trusted.
    let wrong_amount = ExpectedCharge { amount: 2000, ..request.expected.clone() };
    assert!(matches!(provider.retrieve(&created.reference, &wrong_amount), Err(ProviderError::Untrustworthy(_))));
    let other_attempt = charge_request(1999, "EUR", "pm_card_visa").expected;
    assert!(matches!(provider.retrieve(&created.reference, &other_attempt), Err(ProviderError::Untrustworthy(_))));
    assert!(matches!(provider.retrieve("pi_doesnotexist", &request.expected), Err(ProviderError::Untrustworthy(_))));
}

#[test]
fn a_declined_card_is_a_failed_charge_not_an_error() {
    let Some(localstripe) = LocalStripe::start() else { return };
    let provider = provider(&localstripe);
    let payment_method = localstripe.create_payment_method(DECLINED_CARD);
    let request = charge_request(1500, "EUR", &payment_method);

    let created = provider.create(&request).unwrap();
    let confirmed = provider.confirm(&created.reference, &request).unwrap();

    assert_eq!(confirmed.reference, created.reference);
    assert_eq!(failure_code(&confirmed.state), "card_declined");
    let retrieved = provider.retrieve(&created.reference, &request.expected).unwrap();
    assert_eq!(failure_code(&retrieved.state), "card_declined");
    // Nothing to refund: no money moved.
    assert!(matches!(provider.refund(&created.reference, &request.expected), Err(ProviderError::Untrustworthy(_))));
}

#[test]
fn a_card_that_needs_authentication_fails_as_authentication_required() {
    let Some(localstripe) = LocalStripe::start() else { return };
    let provider = provider(&localstripe);
    let payment_method = localstripe.create_payment_method(AUTHENTICATION_CARD);
    let request = charge_request(700, "EUR", &payment_method);

    let created = provider.create(&request).unwrap();
    let confirmed = provider.confirm(&created.reference, &request).unwrap();

    assert_eq!(failure_code(&confirmed.state), "authentication_required");
}

#[test]
fn a_refund_happens_once_however_often_it_is_asked_for() {
    let Some(localstripe) = LocalStripe::start() else { return };
    let provider = provider(&localstripe);
    let request = charge_request(2500, "EUR", "pm_card_visa");
    let created = provider.create(&request).unwrap();
    assert_eq!(provider.confirm(&created.reference, &request).unwrap().state, ChargeState::Succeeded);

    provider.refund(&created.reference, &request.expected).unwrap();
    // localstripe ignores Idempotency-Key: only the adapter's own check prevents a second one.
    provider.refund(&created.reference, &request.expected).unwrap();

    let refunds = localstripe.get_json(&format!("/v1/refunds?payment_intent={}", created.reference));
    let refunds = refunds["data"].as_array().unwrap();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["amount"], 2500);
    assert_eq!(refunds[0]["metadata"]["orderly_payment_id"], request.expected.payment_id.to_string());
}

#[test]
fn localstripe_webhooks_verify_and_parse() {
    let Some(localstripe) = LocalStripe::start() else { return };
    let receiver = StubProvider::start(vec![StubResponse::raw(200, "text/plain", "")]);
    localstripe.register_webhook(&receiver.url("/v1/payment-events"), WEBHOOK_SECRET);
    let provider = provider(&localstripe);
    let request = charge_request(3100, "EUR", "pm_card_visa");
    let created = provider.create(&request).unwrap();
    provider.confirm(&created.reference, &request).unwrap();

    // localstripe sends about a second after the change; other events may come too.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let delivery = loop {
        let found = receiver.requests().into_iter().find(|sent| sent.body_text().contains("payment_intent.succeeded"));
        if let Some(found) = found {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "no payment_intent.succeeded delivered");
        std::thread::sleep(Duration::from_millis(100));
    };

    let header = delivery.header("Stripe-Signature");
    let event = provider.verify_event(header, &delivery.body, Utc::now()).unwrap();
    assert!(event.id.starts_with("evt_"), "{event:?}");
    match event.kind {
        ProviderEventKind::Charge { charge, payment_id, amount, currency } => {
            assert_eq!(charge.reference, created.reference);
            assert_eq!(charge.state, ChargeState::Succeeded);
            assert_eq!(payment_id, Some(request.expected.payment_id));
            assert_eq!((amount, currency.as_str()), (3100, "EUR"));
        }
        other => panic!("not a charge event: {other:?}"),
    }

    // The same delivery, checked with another secret or much later, is refused.
    let mut settings = localstripe.settings("whsec_not_the_one");
    settings.api_base = localstripe.api_base();
    let stranger = StripeProvider::new(settings).unwrap();
    assert!(stranger.verify_event(header, &delivery.body, Utc::now()).is_err());
    assert!(provider.verify_event(header, &delivery.body, Utc::now() + chrono::Duration::minutes(10)).is_err());
}

#[test]
fn a_payment_method_localstripe_does_not_know_fails_at_creation() {
    let Some(localstripe) = LocalStripe::start() else { return };
    let provider = provider(&localstripe);
    for token in ["pm_does_not_exist", "x"] {
        let created = provider.create(&charge_request(1999, "EUR", token)).unwrap();
        assert!(
            matches!(&created.state, ChargeState::Failed(failure) if failure.code == "invalid_payment_method"),
            "{token}: {created:?}"
        );
    }
}

#[test]
fn the_fault_proxy_forwards_and_holds_or_replaces_answers() {
    let Some(localstripe) = LocalStripe::start() else { return };
    let malformed = StubResponse::raw(200, "application/json", "{");
    let proxy = StubProvider::proxy(
        &localstripe.api_base(),
        vec![ProxyFault { path_suffix: "/confirm", times: 1, kind: ProxyFaultKind::Replace(malformed) }],
    );
    let provider = provider_at(&localstripe, &proxy.api_base());
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let created = provider.create(&request).unwrap();
    assert!(matches!(provider.confirm(&created.reference, &request), Err(ProviderError::Untrustworthy(_))));
    // The confirm took effect upstream: the charge succeeded there.
    assert_eq!(provider.retrieve(&created.reference, &request.expected).unwrap().state, ChargeState::Succeeded);
    assert_eq!(proxy.requests().len(), 3);
}
