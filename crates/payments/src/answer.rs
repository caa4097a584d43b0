//! What Stripe's answers must look like before they count, and what they mean to the domain.
//!
//! Owns the wire shapes read (only the fields Orderly relies on; everything else is ignored),
//! the checks against what was asked (reference, amount, currency, attempt id), the mapping of
//! PaymentIntent statuses to [`ChargeState`], and of Stripe's decline codes to the
//! client-facing codes of [`PaymentFailure`]. Nothing here sends a request.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use orderly_domain::payment::{ExpectedCharge, PaymentFailure};
use orderly_domain::ports::{ChargeState, ProviderError};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::transport::Answer;

/// The metadata key that carries the attempt id on every PaymentIntent Orderly creates.
pub(crate) const METADATA_PAYMENT_ID: &str = "orderly_payment_id";

/// The longest failure message passed on to clients (Stripe's are one sentence).
const MAX_FAILURE_MESSAGE_CHARS: usize = 200;

/// The fields of a PaymentIntent that Orderly reads.
#[derive(Debug, Deserialize)]
pub(crate) struct WireIntent {
    pub id: String,
    pub object: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    /// Absent in some expansions; when present, it must name the attempt.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub last_payment_error: Option<WireError>,
}

/// Stripe's error object (`{"error": {...}}` of a 4xx, or `last_payment_error`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireError {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// The request parameter at fault, e.g. `payment_method`.
    #[serde(default)]
    pub param: Option<String>,
    /// Real Stripe names the PaymentIntent a declined confirm was about; localstripe does not.
    #[serde(default)]
    pub payment_intent: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct WireErrorBody {
    error: WireError,
}

/// A refund, as created or listed.
#[derive(Debug, Deserialize)]
pub(crate) struct WireRefund {
    pub id: String,
    pub object: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    #[serde(default)]
    pub payment_intent: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireList<T> {
    pub object: String,
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

pub(crate) fn untrustworthy(error: anyhow::Error) -> ProviderError {
    ProviderError::Untrustworthy(error)
}

/// Whether `raw` can be a Stripe id with `prefix` (and so be put in a URL path as it is).
pub(crate) fn is_provider_id(raw: &str, prefix: &str) -> bool {
    raw.len() > prefix.len()
        && raw.len() <= 255
        && raw.starts_with(prefix)
        && raw.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// A 2xx JSON answer of shape `T`, or why not. Non-2xx answers are described by their error
/// type and code only (never the provider's message, which may quote what was sent).
pub(crate) fn expect_success<T: serde::de::DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, ProviderError> {
    if !answer.status.is_success() {
        return Err(unexpected_status(answer));
    }
    if !answer.is_json {
        return Err(untrustworthy(anyhow!("the {what} answer (HTTP {}) is not JSON", answer.status.as_u16())));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|error| untrustworthy(anyhow!("the {what} answer is not a {what}: {}", shape_error(&error))))
}

/// The error for an answer whose status is not one the caller can use. A 429 that ran out of
/// attempts is `Unreachable`: Stripe does not process rate-limited requests, so nothing
/// happened, exactly as when nothing was sent.
pub(crate) fn unexpected_status(answer: &Answer) -> ProviderError {
    let status = answer.status.as_u16();
    let error = error_body(answer);
    let kind = error.as_ref().and_then(|error| error.kind.as_deref()).unwrap_or("-");
    let code = error.as_ref().and_then(|error| error.code.as_deref()).unwrap_or("-");
    let description = anyhow!("the payment provider answered HTTP {status} (error type {kind}, code {code})");
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        ProviderError::Unreachable(description.context("rate limited; the request was not processed"))
    } else {
        untrustworthy(description)
    }
}

/// The `error` object of a JSON error answer, if it has one.
pub(crate) fn error_body(answer: &Answer) -> Option<WireError> {
    if !answer.is_json {
        return None;
    }
    serde_json::from_slice::<WireErrorBody>(&answer.body).ok().map(|body| body.error)
}

/// serde's message without the input it quotes (a wrong value would be echoed otherwise).
fn shape_error(error: &serde_json::Error) -> String {
    let category = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
        serde_json::error::Category::Data => "unexpected fields or types",
    };
    format!("{category} at line {} column {}", error.line(), error.column())
}

/// Checks that `intent` is the PaymentIntent of `expected`: the right object, the `reference`
/// asked for (when one was), the expected amount and currency, and — when the answer carries
/// metadata, or `require_metadata` — the attempt id in it.
pub(crate) fn check_intent(
    intent: &WireIntent,
    expected: &ExpectedCharge,
    reference: Option<&str>,
    require_metadata: bool,
) -> anyhow::Result<()> {
    if intent.object != "payment_intent" {
        bail!("the answer is a {:?}, not a payment_intent", intent.object);
    }
    if !is_provider_id(&intent.id, "pi_") {
        bail!("the answer's id {:?} is not a PaymentIntent id", intent.id);
    }
    if let Some(reference) = reference
        && intent.id != reference
    {
        bail!("the answer is about PaymentIntent {:?}, not {reference:?}", intent.id);
    }
    if intent.amount != expected.amount {
        bail!("the answer's amount {} is not the expected {}", intent.amount, expected.amount);
    }
    if !intent.currency.eq_ignore_ascii_case(expected.currency.as_str()) {
        bail!("the answer's currency {:?} is not the expected {}", intent.currency, expected.currency.as_str());
    }
    match intent.metadata.as_ref() {
        Some(metadata) => {
            let expected_id = expected.payment_id.to_string();
            match metadata.get(METADATA_PAYMENT_ID) {
                Some(id) if *id == expected_id => {}
                Some(id) => bail!("the answer belongs to attempt {id:?}, not {expected_id}"),
                None => bail!("the answer names no Orderly attempt ({METADATA_PAYMENT_ID} missing)"),
            }
        }
        None if require_metadata => bail!("the answer has no metadata"),
        None => {}
    }
    Ok(())
}

/// What a PaymentIntent's status means to the domain.
pub(crate) fn charge_state(intent: &WireIntent) -> anyhow::Result<ChargeState> {
    Ok(match intent.status.as_str() {
        "requires_confirmation" => ChargeState::AwaitingConfirmation,
        "processing" => ChargeState::Processing,
        "succeeded" => ChargeState::Succeeded,
        "canceled" => ChargeState::Canceled,
        // Back here after a failed confirm: the last error says why.
        "requires_payment_method" => {
            ChargeState::Failed(failure(intent.last_payment_error.as_ref().unwrap_or(&WireError::default())))
        }
        // 3-D Secure or another customer action: Orderly has no flow for it, and without it
        // no money moves.
        "requires_action" => ChargeState::Failed(PaymentFailure::new(
            AUTHENTICATION_REQUIRED,
            "The card requires authentication, which is not supported; use another payment method.",
        )),
        // Orderly never asks for manual capture, so money is held that nobody will capture.
        "requires_capture" => bail!("the PaymentIntent awaits a capture Orderly never asked for"),
        other => bail!("the PaymentIntent has an unknown status {other:?}"),
    })
}

const CARD_DECLINED: &str = "card_declined";
const EXPIRED_CARD: &str = "expired_card";
const INCORRECT_CVC: &str = "incorrect_cvc";
const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
const AUTHENTICATION_REQUIRED: &str = "authentication_required";

/// Stripe's decline (`code`, refined by `decline_code`) in the words clients switch on:
/// `card_declined`, `expired_card`, `incorrect_cvc`, `insufficient_funds`,
/// `authentication_required`. Known codes get Orderly's own message; an unknown one is a
/// `card_declined` with the provider's message, cleaned of control characters and shortened.
pub(crate) fn failure(error: &WireError) -> PaymentFailure {
    let code = error.code.as_deref().unwrap_or(CARD_DECLINED);
    let decline = error.decline_code.as_deref().unwrap_or("");
    let is = |name: &str| code == name || decline == name;
    if is(INSUFFICIENT_FUNDS) {
        PaymentFailure::new(INSUFFICIENT_FUNDS, "The card has insufficient funds.")
    } else if is(EXPIRED_CARD) {
        PaymentFailure::new(EXPIRED_CARD, "The card has expired.")
    } else if is(INCORRECT_CVC) || is("invalid_cvc") {
        PaymentFailure::new(INCORRECT_CVC, "The card's security code is incorrect.")
    } else if is(AUTHENTICATION_REQUIRED) || code == "payment_intent_authentication_failure" {
        PaymentFailure::new(
            AUTHENTICATION_REQUIRED,
            "The card requires authentication, which is not supported; use another payment method.",
        )
    } else if code == CARD_DECLINED && matches!(decline, "" | "generic_decline") {
        PaymentFailure::new(CARD_DECLINED, "The card was declined.")
    } else {
        let message = error.message.as_deref().map(clean_message).filter(|message| !message.is_empty());
        PaymentFailure::new(CARD_DECLINED, message.unwrap_or_else(|| "The card was declined.".to_owned()))
    }
}

/// One line of printable text, at most [`MAX_FAILURE_MESSAGE_CHARS`] characters.
fn clean_message(raw: &str) -> String {
    let words: Vec<&str> = raw.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect();
    let line = words.join(" ");
    match line.char_indices().nth(MAX_FAILURE_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use orderly_domain::payment::PaymentId;
    use orderly_domain::product::Currency;

    use super::*;

    fn expected() -> ExpectedCharge {
        ExpectedCharge { payment_id: PaymentId::new(), amount: 1999, currency: Currency::parse("EUR").unwrap() }
    }

    fn intent(expected: &ExpectedCharge) -> WireIntent {
        WireIntent {
            id: "pi_123".into(),
            object: "payment_intent".into(),
            status: "succeeded".into(),
            amount: expected.amount,
            currency: "eur".into(),
            metadata: Some([(METADATA_PAYMENT_ID.to_owned(), expected.payment_id.to_string())].into()),
            last_payment_error: None,
        }
    }

    #[test]
    fn a_matching_intent_passes_and_every_mismatch_fails() {
        let expected = expected();
        assert!(check_intent(&intent(&expected), &expected, Some("pi_123"), true).is_ok());
        let mismatches: &[fn(&mut WireIntent)] = &[
            |i| i.object = "charge".into(),
            |i| i.id = "ch_123".into(),
            |i| i.id = "pi_124".into(),
            |i| i.amount += 1,
            |i| i.currency = "usd".into(),
            |i| i.metadata = Some([(METADATA_PAYMENT_ID.to_owned(), PaymentId::new().to_string())].into()),
            |i| i.metadata = Some(BTreeMap::new()),
            |i| i.metadata = None,
        ];
        for (n, mismatch) in mismatches.iter().enumerate() {
            let mut wrong = intent(&expected);
            mismatch(&mut wrong);
            assert!(check_intent(&wrong, &expected, Some("pi_123"), true).is_err(), "mismatch {n}");
        }
        let mut without_metadata = intent(&expected);
        without_metadata.metadata = None;
        assert!(check_intent(&without_metadata, &expected, None, false).is_ok());
    }

    #[test]
    fn statuses_map_to_charge_states() {
        let expected = expected();
        let state = |status: &str| {
            let mut intent = intent(&expected);
            intent.status = status.into();
            charge_state(&intent)
        };
        assert_eq!(state("requires_confirmation").unwrap(), ChargeState::AwaitingConfirmation);
        assert_eq!(state("processing").unwrap(), ChargeState::Processing);
        assert_eq!(state("succeeded").unwrap(), ChargeState::Succeeded);
        assert_eq!(state("canceled").unwrap(), ChargeState::Canceled);
        assert!(
            matches!(state("requires_payment_method").unwrap(), ChargeState::Failed(f) if f.code == "card_declined")
        );
        assert!(
            matches!(state("requires_action").unwrap(), ChargeState::Failed(f) if f.code == "authentication_required")
        );
        assert!(state("requires_capture").is_err());
        assert!(state("paid").is_err());
    }

    #[test]
    fn declines_map_to_client_codes() {
        let code = |code: Option<&str>, decline: Option<&str>| {
            failure(&WireError {
                code: code.map(Into::into),
                decline_code: decline.map(Into::into),
                ..WireError::default()
            })
            .code
        };
        assert_eq!(code(Some("card_declined"), None), "card_declined");
        assert_eq!(code(Some("card_declined"), Some("insufficient_funds")), "insufficient_funds");
        assert_eq!(code(Some("expired_card"), None), "expired_card");
        assert_eq!(code(Some("incorrect_cvc"), None), "incorrect_cvc");
        assert_eq!(code(Some("payment_intent_authentication_failure"), None), "authentication_required");
        assert_eq!(code(Some("card_declined"), Some("authentication_required")), "authentication_required");
        assert_eq!(code(None, None), "card_declined");
        assert_eq!(code(Some("something_new"), None), "card_declined");
    }

    #[test]
    fn unknown_decline_messages_are_cleaned_and_shortened() {
        let failure = failure(&WireError {
            code: Some("something_new".into()),
            message: Some(format!("Bad\n\tthing\u{7}  {}", "x".repeat(500))),
            ..WireError::default()
        });
        assert!(failure.message.starts_with("Bad thing "));
        assert!(failure.message.chars().count() <= MAX_FAILURE_MESSAGE_CHARS + 1);
        assert!(!failure.message.chars().any(char::is_control));
    }

    #[test]
    fn provider_ids_are_checked_before_they_reach_a_path() {
        assert!(is_provider_id("pi_3MtwBwLkdIwHu7ix28a3tqPa", "pi_"));
        for bad in ["pi_", "ch_1", "pi_../refunds", "pi_1?x=1", "pi_1/confirm", ""] {
            assert!(!is_provider_id(bad, "pi_"), "{bad}");
        }
    }
}
