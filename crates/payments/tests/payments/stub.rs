//! Faults localstripe cannot produce: slow, failing, rate-limited, malformed and inconsistent
//! answers, and a provider that cannot be reached.

use std::time::Duration;

use orderly_domain::payment::PaymentId;
use orderly_domain::ports::{ChargeState, PaymentProvider, ProviderError};
use orderly_payments::testing::{StubProvider, StubResponse};
use serde_json::json;

use crate::fixtures::{SECRET_KEY, charge_request, intent, provider};

/// Generous: these tests are about what the answer says, not about time.
const PATIENT: Duration = Duration::from_secs(5);
const REFERENCE: &str = "pi_stub123";

fn untrustworthy(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
    match result {
        Err(error @ ProviderError::Untrustworthy(_)) => {
            let printed = format!("{error:?} {error:#}");
            assert!(!printed.contains(SECRET_KEY), "the key leaked into an error: {printed}");
            printed
        }
        other => panic!("expected Untrustworthy, got {other:?}"),
    }
}

#[test]
fn a_confirm_that_gets_no_answer_in_time_times_out_and_is_not_repeated() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let stub = StubProvider::start(vec![
        StubResponse::json(200, &intent(REFERENCE, "succeeded", &request)).delayed(Duration::from_secs(5)),
    ]);
    let provider = provider(&stub.api_base(), Duration::from_millis(300));

    let result = provider.confirm(REFERENCE, &request);

    assert!(matches!(result, Err(ProviderError::TimedOut(_))), "{result:?}");
    assert!(result.unwrap_err().outcome_unknown());
    // Were it retried, the next attempt would come after at most a second of back-off.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(stub.requests().len(), 1, "a confirm that may have moved money must not be resent");
}

#[test]
fn a_create_that_gets_no_answer_in_time_is_retried_with_the_same_key() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let stub = StubProvider::start(vec![
        StubResponse::json(200, &intent(REFERENCE, "requires_confirmation", &request)).delayed(Duration::from_secs(5)),
    ]);
    let provider = provider(&stub.api_base(), Duration::from_millis(300));

    let result = provider.create(&request);

    assert!(matches!(result, Err(ProviderError::TimedOut(_))), "{result:?}");
    let seen = stub.requests();
    assert_eq!(seen.len(), 3, "create is retried up to max_attempts");
    let key = format!("orderly-payment-{}-create", request.expected.payment_id);
    assert!(seen.iter().all(|request| request.header("Idempotency-Key") == Some(key.as_str())), "{seen:?}");
}

#[test]
fn a_provider_that_refuses_connections_is_unreachable() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let provider = provider(&StubProvider::refused_api_base(), PATIENT);

    for result in [provider.create(&request), provider.confirm(REFERENCE, &request)] {
        match result {
            Err(error @ ProviderError::Unreachable(_)) => assert!(!error.outcome_unknown()),
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
    assert!(matches!(provider.retrieve(REFERENCE, &request.expected), Err(ProviderError::Unreachable(_))));
}

#[test]
fn answers_that_fail_a_check_are_never_a_success() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let good = intent(REFERENCE, "succeeded", &request);
    let with = |field: &str, value: serde_json::Value| {
        let mut body = good.clone();
        body[field] = value;
        StubResponse::json(200, &body)
    };
    let cases = [
        ("malformed JSON", StubResponse::raw(200, "application/json", "{\"id\": \"pi_stub123\", ")),
        ("not JSON at all", StubResponse::raw(200, "application/json", "<html>ok</html>")),
        ("wrong content type", StubResponse::raw(200, "text/html", good.to_string())),
        ("no content type", StubResponse { headers: vec![], ..StubResponse::json(200, &good) }),
        ("wrong amount", with("amount", json!(1))),
        ("amount as a string", with("amount", json!("1999"))),
        ("wrong currency", with("currency", json!("usd"))),
        ("another attempt's id", with("metadata", json!({"orderly_payment_id": PaymentId::new().to_string()}))),
        ("no attempt id", with("metadata", json!({}))),
        ("another PaymentIntent", with("id", json!("pi_other"))),
        ("not a PaymentIntent", with("object", json!("charge"))),
        ("held for a capture never asked for", with("status", json!("requires_capture"))),
        ("an unknown status", with("status", json!("paid"))),
        ("an array", StubResponse::json(200, &json!([good]))),
        ("a client error", StubResponse::json(400, &json!({"error": {"type": "invalid_request_error"}}))),
        ("not found", StubResponse::json(404, &json!({"error": {"type": "invalid_request_error"}}))),
        ("a redirect", StubResponse::raw(302, "text/plain", "").with_header("Location", "http://127.0.0.1:9/")),
    ];
    for (name, answer) in cases {
        for operation in ["confirm", "retrieve"] {
            let stub = StubProvider::start(vec![answer.clone()]);
            let provider = provider(&stub.api_base(), PATIENT);
            let result = match operation {
                "confirm" => provider.confirm(REFERENCE, &request),
                _ => provider.retrieve(REFERENCE, &request.expected),
            };
            let printed = untrustworthy(result);
            assert_eq!(stub.requests().len(), 1, "{operation} / {name}: {printed}");
        }
    }
}

#[test]
fn a_create_that_fails_with_5xx_is_retried_with_the_same_key_and_then_succeeds() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let stub = StubProvider::start(vec![
        StubResponse::json(500, &json!({"error": {"type": "api_error"}})),
        StubResponse::json(200, &intent(REFERENCE, "requires_confirmation", &request)),
    ]);
    let provider = provider(&stub.api_base(), PATIENT);

    let charge = provider.create(&request).unwrap();

    assert_eq!(charge.reference, REFERENCE);
    assert_eq!(charge.state, ChargeState::AwaitingConfirmation);
    let seen = stub.requests();
    assert_eq!(seen.len(), 2);
    let key = format!("orderly-payment-{}-create", request.expected.payment_id);
    for sent in &seen {
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path(), "/v1/payment_intents");
        assert_eq!(sent.header("Idempotency-Key"), Some(key.as_str()));
        assert_eq!(sent.header("Authorization"), Some(format!("Bearer {SECRET_KEY}").as_str()));
        assert!(sent.header("Content-Type").unwrap().starts_with("application/x-www-form-urlencoded"));
        assert_eq!(sent.form_value("amount").as_deref(), Some("1999"));
        assert_eq!(sent.form_value("currency").as_deref(), Some("eur"));
        assert_eq!(sent.form_value("payment_method").as_deref(), Some("pm_card_visa"));
        assert_eq!(sent.form_value("metadata[orderly_payment_id]"), Some(request.expected.payment_id.to_string()));
        assert_eq!(sent.form_value("metadata[orderly_order_id]"), Some(request.order_id.to_string()));
        assert_eq!(sent.form_value("metadata[request_id]").as_deref(), Some("req-fixture-1"));
        assert_eq!(sent.form_value("confirm"), None, "creating must not confirm");
    }
}

#[test]
fn a_rate_limited_confirm_waits_and_is_retried_with_the_same_key() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let stub = StubProvider::start(vec![
        StubResponse::json(429, &json!({"error": {"type": "rate_limit_error"}})).with_header("Retry-After", "1"),
        StubResponse::json(200, &intent(REFERENCE, "succeeded", &request)),
    ]);
    let provider = provider(&stub.api_base(), PATIENT);

    let charge = provider.confirm(REFERENCE, &request).unwrap();

    assert_eq!(charge.state, ChargeState::Succeeded);
    let seen = stub.requests();
    assert_eq!(seen.len(), 2);
    let key = format!("orderly-payment-{}-confirm", request.expected.payment_id);
    for sent in &seen {
        assert_eq!(sent.path(), format!("/v1/payment_intents/{REFERENCE}/confirm"));
        assert_eq!(sent.header("Idempotency-Key"), Some(key.as_str()));
        assert!(sent.form().is_empty(), "confirm sends no parameters: {:?}", sent.form());
    }
}

#[test]
fn a_confirm_rate_limited_to_the_end_was_not_processed() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let stub = StubProvider::start(vec![StubResponse::json(429, &json!({"error": {"type": "rate_limit_error"}}))]);
    let provider = provider(&stub.api_base(), PATIENT);

    let result = provider.confirm(REFERENCE, &request);

    assert!(matches!(result, Err(ProviderError::Unreachable(_))), "{result:?}");
    assert_eq!(stub.requests().len(), 3);
}

#[test]
fn a_confirm_that_fails_with_5xx_is_not_repeated() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let stub = StubProvider::start(vec![
        StubResponse::json(503, &json!({"error": {"type": "api_error"}})),
        StubResponse::json(200, &intent(REFERENCE, "succeeded", &request)),
    ]);
    let provider = provider(&stub.api_base(), PATIENT);

    let printed = untrustworthy(provider.confirm(REFERENCE, &request));

    assert!(printed.contains("503"), "{printed}");
    assert_eq!(stub.requests().len(), 1, "a 5xx confirm may have moved money");
}

#[test]
fn a_stripe_decline_is_a_failed_charge_with_a_client_code() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let mut failed = intent(REFERENCE, "requires_payment_method", &request);
    let decline = |payment_intent: serde_json::Value| {
        StubResponse::json(
            402,
            &json!({"error": {
                "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.", "payment_intent": payment_intent,
            }}),
        )
    };
    let stub = StubProvider::start(vec![decline(failed.clone())]);
    let charge = provider(&stub.api_base(), PATIENT).confirm(REFERENCE, &request).unwrap();
    assert_eq!(charge.reference, REFERENCE);
    assert!(matches!(charge.state, ChargeState::Failed(ref f) if f.code == "insufficient_funds"), "{charge:?}");

    // A decline about another charge is not an answer about this one.
    failed["amount"] = json!(5);
    let stub = StubProvider::start(vec![decline(failed)]);
    untrustworthy(provider(&stub.api_base(), PATIENT).confirm(REFERENCE, &request));

    // Neither is a 402 that says nothing.
    let stub = StubProvider::start(vec![StubResponse::json(402, &json!({"error": {"type": "card_error"}}))]);
    untrustworthy(provider(&stub.api_base(), PATIENT).confirm(REFERENCE, &request));
}

#[test]
fn a_refund_checks_for_an_earlier_one_before_refunding() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let succeeded = StubResponse::json(200, &intent(REFERENCE, "succeeded", &request));
    let refund = json!({
        "id": "re_1", "object": "refund", "amount": 1999, "currency": "eur",
        "status": "succeeded", "payment_intent": REFERENCE,
    });

    let stub = StubProvider::start(vec![
        succeeded.clone(),
        StubResponse::json(200, &json!({"object": "list", "data": [], "has_more": false})),
        StubResponse::json(200, &refund),
    ]);
    provider(&stub.api_base(), PATIENT).refund(REFERENCE, &request.expected).unwrap();
    let seen = stub.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!((seen[0].method.as_str(), seen[0].path()), ("GET", format!("/v1/payment_intents/{REFERENCE}").as_str()));
    assert_eq!((seen[1].method.as_str(), seen[1].path()), ("GET", "/v1/refunds"));
    assert!(seen[1].target.contains(&format!("payment_intent={REFERENCE}")), "{}", seen[1].target);
    assert_eq!((seen[2].method.as_str(), seen[2].path()), ("POST", "/v1/refunds"));
    assert_eq!(seen[2].form_value("payment_intent").as_deref(), Some(REFERENCE));
    let key = format!("orderly-payment-{}-refund", request.expected.payment_id);
    assert_eq!(seen[2].header("Idempotency-Key"), Some(key.as_str()));

    // Refunded already: nothing is sent.
    let stub = StubProvider::start(vec![
        succeeded.clone(),
        StubResponse::json(200, &json!({"object": "list", "data": [refund], "has_more": false})),
    ]);
    provider(&stub.api_base(), PATIENT).refund(REFERENCE, &request.expected).unwrap();
    assert_eq!(stub.requests().len(), 2);

    // A charge that did not succeed is not refunded.
    let stub = StubProvider::start(vec![StubResponse::json(200, &intent(REFERENCE, "processing", &request))]);
    untrustworthy(provider(&stub.api_base(), PATIENT).refund(REFERENCE, &request.expected));
    assert_eq!(stub.requests().len(), 1);

    // A refund timing out is not resent (it may have happened; the next call finds it).
    let stub = StubProvider::start(vec![
        succeeded,
        StubResponse::json(200, &json!({"object": "list", "data": [], "has_more": false})),
        StubResponse::json(200, &json!({"id": "re_2"})).delayed(Duration::from_secs(5)),
    ]);
    let result = provider(&stub.api_base(), Duration::from_millis(300)).refund(REFERENCE, &request.expected);
    assert!(matches!(result, Err(ProviderError::TimedOut(_))), "{result:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(stub.requests().len(), 3);
}

#[test]
fn references_that_are_not_payment_intent_ids_are_never_sent() {
    let request = charge_request(1999, "EUR", "pm_card_visa");
    let stub = StubProvider::start(vec![StubResponse::json(200, &intent(REFERENCE, "succeeded", &request))]);
    let provider = provider(&stub.api_base(), PATIENT);
    for reference in ["../v1/refunds", "pi_1/cancel", "ch_123", ""] {
        untrustworthy(provider.retrieve(reference, &request.expected));
        untrustworthy(provider.confirm(reference, &request));
    }
    assert!(stub.requests().is_empty());
}

#[test]
fn a_payment_method_the_provider_refuses_at_creation_is_a_failed_charge_but_other_refusals_are_not() {
    let request = charge_request(1999, "EUR", "pm_typo");
    // Stripe: 400 naming the parameter; localstripe: 404 naming none.
    for refusal in [
        json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "payment_method",
            "message": "No such PaymentMethod: 'pm_typo'"}}),
        json!({"error": {"type": "invalid_request_error", "message": "Not Found"}}),
    ] {
        let status = if refusal["error"]["param"].is_null() { 404 } else { 400 };
        let stub = StubProvider::start(vec![StubResponse::json(status, &refusal)]);
        let created = provider(&stub.api_base(), PATIENT).create(&request).unwrap();
        match created.state {
            ChargeState::Failed(failure) => assert_eq!(failure.code, "invalid_payment_method"),
            other => panic!("expected a failed charge, got {other:?}"),
        }
        assert_eq!(stub.requests().len(), 1, "a refusal is an answer: not retried");
    }
    // A refusal naming Orderly's own parameters is Orderly's or the provider's fault, not the
    // customer's: untrustworthy, never a decline.
    let amount = json!({"error": {"type": "invalid_request_error", "param": "amount", "message": "Invalid integer"}});
    let stub = StubProvider::start(vec![StubResponse::json(400, &amount)]);
    untrustworthy(provider(&stub.api_base(), PATIENT).create(&request));
    // And the refusal of a confirm is not about the method at creation.
    let stub = StubProvider::start(vec![StubResponse::json(404, &json!({"error": {"type": "invalid_request_error"}}))]);
    untrustworthy(provider(&stub.api_base(), PATIENT).confirm(REFERENCE, &request));
}
