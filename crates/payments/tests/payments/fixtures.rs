//! Requests, settings and answers the tests share.

use std::time::Duration;

use orderly_domain::order::OrderId;
use orderly_domain::payment::{ExpectedCharge, PaymentId, PaymentMethodToken};
use orderly_domain::ports::ChargeRequest;
use orderly_domain::product::Currency;
use orderly_payments::{StripeProvider, StripeSettings};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_fixture_secret_key_4242";
pub const WEBHOOK_SECRET: &str = "whsec_fixture_webhook_secret";

pub fn charge_request(amount: i64, currency: &str, payment_method: &str) -> ChargeRequest {
    ChargeRequest {
        expected: ExpectedCharge { payment_id: PaymentId::new(), amount, currency: Currency::parse(currency).unwrap() },
        order_id: OrderId::new(),
        payment_method: PaymentMethodToken::parse(payment_method).unwrap(),
        request_id: Some("req-fixture-1".to_owned()),
    }
}

/// A provider on `api_base` with `timeout` per attempt and up to 3 attempts.
pub fn provider(api_base: &str, timeout: Duration) -> StripeProvider {
    let mut settings = StripeSettings::new(SecretString::from(SECRET_KEY), SecretString::from(WEBHOOK_SECRET));
    settings.api_base = api_base.to_owned();
    settings.timeout = timeout;
    settings.connect_timeout = timeout.min(Duration::from_secs(1));
    settings.max_attempts = 3;
    StripeProvider::new(settings).unwrap()
}

/// A PaymentIntent as Stripe would answer it for `request`.
pub fn intent(id: &str, status: &str, request: &ChargeRequest) -> Value {
    json!({
        "id": id,
        "object": "payment_intent",
        "status": status,
        "amount": request.expected.amount,
        "currency": request.expected.currency.as_str().to_ascii_lowercase(),
        "client_secret": format!("{id}_secret_abc"),
        "metadata": {
            "orderly_payment_id": request.expected.payment_id.to_string(),
            "orderly_order_id": request.order_id.to_string(),
        },
        "last_payment_error": null,
    })
}
