//! What a delivery carries and how it is signed (Standard Webhooks 1.0).

use std::time::Duration;

use orderly_domain::ports::{SendOutcome, WebhookSender as _};
use orderly_webhooks::testing::{Receiver, VerifyError, verify};

use crate::fixtures::{SECRET, USER_AGENT, event, expected_body, loopback_sender, send, send_with};

#[test]
fn a_delivery_is_the_event_as_the_feed_shows_it_signed_and_verifiable() {
    let receiver = Receiver::start();
    let sender = loopback_sender();
    let event = event();

    let report = send(&sender, &receiver.url("/hooks/orderly?source=test"), &event);

    assert_eq!(report.outcome, SendOutcome::Delivered { status: 200 });
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/hooks/orderly?source=test");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("user-agent"), Some(USER_AGENT));
    assert_eq!(request.body_text(), expected_body(&event));

    let verified = verify(SECRET, request).unwrap();
    assert_eq!(verified.id, event.id.to_string());
    assert_eq!(verified.body["id"], event.id.to_string());
    let now = chrono::Utc::now().timestamp();
    assert!((now - verified.timestamp).abs() <= 60, "timestamp {} vs now {now}", verified.timestamp);
}

#[test]
fn every_attempt_of_one_event_has_the_same_id_and_a_fresh_timestamp_and_signature() {
    let receiver = Receiver::start();
    let sender = loopback_sender();
    let event = event();

    send(&sender, &receiver.url("/"), &event);
    // Timestamps are whole seconds: wait into the next one.
    std::thread::sleep(Duration::from_millis(1100));
    send(&sender, &receiver.url("/"), &event);

    let requests = receiver.wait_for(2, Duration::from_secs(5));
    assert_eq!(requests.len(), 2);
    let first = verify(SECRET, &requests[0]).unwrap();
    let second = verify(SECRET, &requests[1]).unwrap();
    assert_eq!(first.id, event.id.to_string());
    assert_eq!(second.id, first.id);
    assert!(second.timestamp > first.timestamp, "{} then {}", first.timestamp, second.timestamp);
    assert_ne!(second.signature, first.signature);
    assert_eq!(requests[0].body, requests[1].body);
}

#[test]
fn the_verifier_refuses_a_wrong_secret_a_changed_body_and_truncated_or_extra_signatures() {
    let receiver = Receiver::start();
    let sender = loopback_sender();
    send(&sender, &receiver.url("/"), &event());
    let genuine = receiver.requests().remove(0);
    assert!(verify(SECRET, &genuine).is_ok());

    let other_secret = sender.new_secret().unwrap();
    assert!(verify(other_secret.expose(), &genuine).is_err());

    let mut changed = genuine.clone();
    changed.body = changed.body_text().replace("3000", "3001").into_bytes();
    assert!(verify(SECRET, &changed).is_err());

    let signature = genuine.header("webhook-signature").unwrap().to_owned();
    let with_signature = |value: &str| {
        let mut request = genuine.clone();
        for (name, header) in &mut request.headers {
            if name.eq_ignore_ascii_case("webhook-signature") {
                *header = value.to_owned();
            }
        }
        request
    };
    for truncated in [&signature[..signature.len() - 4], &signature[..10], "v1,"] {
        assert!(verify(SECRET, &with_signature(truncated)).is_err(), "{truncated}");
    }
    let two = format!("v1,AAAA {signature}");
    assert!(matches!(verify(SECRET, &with_signature(&two)), Err(VerifyError::MalformedSignature(_))));

    let mut no_id = genuine.clone();
    no_id.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("webhook-id"));
    assert_eq!(verify(SECRET, &no_id), Err(VerifyError::MissingHeader("webhook-id")));
}

#[test]
fn each_endpoint_signs_with_its_own_secret() {
    let receiver = Receiver::start();
    let sender = loopback_sender();
    let secret = sender.new_secret().unwrap();
    assert!(secret.expose().starts_with("whsec_"));
    assert!(standardwebhooks::Webhook::new(secret.expose()).is_ok());
    assert_ne!(sender.new_secret().unwrap(), secret);

    let (report, _) = send_with(&sender, &receiver.url("/"), secret.expose(), &event());

    assert_eq!(report.outcome, SendOutcome::Delivered { status: 200 });
    let request = receiver.requests().remove(0);
    assert!(verify(secret.expose(), &request).is_ok());
    assert!(verify(SECRET, &request).is_err());
}

#[test]
fn nothing_is_sent_for_an_unusable_secret_or_payload() {
    let receiver = Receiver::start();
    let sender = loopback_sender();

    let (report, _) = send_with(&sender, &receiver.url("/"), "whsec_***not base64***", &event());
    match report.outcome {
        SendOutcome::NoAnswer { reason } => {
            assert!(reason.starts_with("not sent:"), "{reason}");
            assert!(!reason.contains("***"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let mut broken = event();
    broken.data_json = "[1, 2]".into();
    let report = send(&sender, &receiver.url("/"), &broken);
    assert!(matches!(report.outcome, SendOutcome::NoAnswer { ref reason } if reason.contains("payload")));

    std::thread::sleep(crate::fixtures::SETTLE);
    assert_eq!(receiver.connections(), 0);
}
