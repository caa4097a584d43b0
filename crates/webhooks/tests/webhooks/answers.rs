//! How each kind of answer, or no answer, ends an attempt: 2xx, other statuses, redirects
//! (never followed), a receiver that does not answer in time, bodies that never end, a port
//! where nothing listens. And the metrics each attempt emits.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use orderly_domain::ports::SendOutcome;
use orderly_webhooks::HttpWebhookSender;
use orderly_webhooks::metrics::{WEBHOOK_DELIVERY_ATTEMPT_DURATION_SECONDS, WEBHOOK_DELIVERY_ATTEMPTS_TOTAL};
use orderly_webhooks::testing::{Receiver, Reply, loopback_policy};

use crate::fixtures::{SETTLE, event, loopback_sender, send, send_with, settings, strict_http_policy};

/// Generous: what an attempt may take beyond its timeout on a busy 2-core machine.
const MARGIN: Duration = Duration::from_secs(5);

#[test]
fn any_2xx_is_delivered_and_anything_else_rejected() {
    let receiver = Receiver::start();
    receiver.script(vec![
        Reply::status(200),
        Reply::status(204),
        Reply::status(299),
        Reply::status(500),
        Reply::status(404),
        Reply::status(429),
        Reply::status(400).with_body("nope"),
    ]);
    let sender = loopback_sender();
    let url = receiver.url("/");
    let outcomes: Vec<SendOutcome> = (0..7).map(|_| send(&sender, &url, &event()).outcome).collect();
    assert_eq!(
        outcomes,
        [
            SendOutcome::Delivered { status: 200 },
            SendOutcome::Delivered { status: 204 },
            SendOutcome::Delivered { status: 299 },
            SendOutcome::Rejected { status: 500 },
            SendOutcome::Rejected { status: 404 },
            SendOutcome::Rejected { status: 429 },
            SendOutcome::Rejected { status: 400 },
        ]
    );
    assert_eq!(receiver.requests().len(), 7);
}

#[test]
fn a_redirect_is_a_rejection_and_is_not_followed() {
    let target = Receiver::start();
    let redirecting = Receiver::start();
    redirecting.script(vec![
        Reply::redirect(302, &target.url("/stolen")),
        Reply::redirect(307, &target.url("/stolen")),
        Reply::redirect(308, &target.url("/stolen")),
        Reply::redirect(301, "/relative"),
    ]);
    let sender = loopback_sender();

    for status in [302, 307, 308, 301] {
        let report = send(&sender, &redirecting.url("/hook"), &event());
        assert_eq!(report.outcome, SendOutcome::Rejected { status });
    }

    std::thread::sleep(SETTLE);
    assert_eq!(redirecting.requests().len(), 4, "the relative redirect was not followed either");
    assert!(target.requests().is_empty());
    assert_eq!(target.connections(), 0);
}

#[test]
fn a_receiver_that_does_not_answer_in_time_is_no_answer_within_the_timeout() {
    let receiver = Receiver::start();
    receiver.set_default(Reply::ok().delayed(Duration::from_secs(60)));
    let timeout = Duration::from_secs(1);
    let sender = HttpWebhookSender::new(settings(loopback_policy(), timeout)).unwrap();

    let (report, took) = send_with(&sender, &receiver.url("/slow"), crate::fixtures::SECRET, &event());

    assert_eq!(report.outcome, SendOutcome::NoAnswer { reason: "timed out after 1 s".into() });
    assert!(took < timeout + MARGIN, "took {took:?}");
    assert!(report.duration <= took);
    assert_eq!(receiver.requests().len(), 1, "the request was sent; the answer is what was missing");
}

#[test]
fn a_huge_or_endless_answer_body_is_not_read() {
    let receiver = Receiver::start();
    receiver.script(vec![
        Reply::endless(200),
        Reply::endless(500),
        Reply::status(200).with_body(vec![b'x'; 8 * 1024 * 1024]),
        // The same endless body, started only after a while: still bounded by the timeout.
        Reply::endless(202).delayed(Duration::from_millis(200)),
    ]);
    let timeout = Duration::from_secs(3);
    let sender = HttpWebhookSender::new(settings(loopback_policy(), timeout)).unwrap();
    let url = receiver.url("/");

    for expected in [
        SendOutcome::Delivered { status: 200 },
        SendOutcome::Rejected { status: 500 },
        SendOutcome::Delivered { status: 200 },
        SendOutcome::Delivered { status: 202 },
    ] {
        let (report, took) = send_with(&sender, &url, crate::fixtures::SECRET, &event());
        assert_eq!(report.outcome, expected);
        assert!(took < timeout + MARGIN, "took {took:?}");
    }
    // And the sender still works afterwards.
    assert_eq!(send(&sender, &url, &event()).outcome, SendOutcome::Delivered { status: 200 });
}

#[test]
fn a_port_where_nothing_listens_is_a_refused_connection() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let report = send(&loopback_sender(), &format!("http://127.0.0.1:{port}/"), &event());
    assert_eq!(report.outcome, SendOutcome::NoAnswer { reason: "connection refused".into() });
}

#[test]
fn a_receiver_that_closes_without_answering_is_no_answer() {
    // A listener that accepts and closes at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closer = std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            drop(stream);
        }
    });
    let report = send(&loopback_sender(), &format!("http://127.0.0.1:{port}/"), &event());
    closer.join().unwrap();
    match report.outcome {
        SendOutcome::NoAnswer { reason } => assert!(!reason.contains("127.0.0.1"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_attempt_is_counted_by_outcome_and_timed_unless_refused() {
    let receiver = Receiver::start();
    receiver.script(vec![Reply::status(200), Reply::status(503)]);
    let loopback = loopback_sender();
    let strict = HttpWebhookSender::new(settings(strict_http_policy(), Duration::from_secs(5))).unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        send(&loopback, &receiver.url("/"), &event());
        send(&loopback, &receiver.url("/"), &event());
        send(&loopback, &format!("http://127.0.0.1:{closed_port}/"), &event());
        send(&strict, &receiver.url("/"), &event());
    });

    let mut counts = Vec::new();
    let mut timed = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        match value {
            DebugValue::Counter(count) if key.name() == WEBHOOK_DELIVERY_ATTEMPTS_TOTAL => {
                let labels: Vec<_> =
                    key.labels().map(|label| (label.key().to_owned(), label.value().to_owned())).collect();
                assert_eq!(labels.len(), 1);
                assert_eq!(labels[0].0, "outcome");
                counts.push((labels[0].1.clone(), count));
            }
            DebugValue::Histogram(values) if key.name() == WEBHOOK_DELIVERY_ATTEMPT_DURATION_SECONDS => {
                assert_eq!(key.labels().count(), 0);
                timed += values.len();
            }
            _ => panic!("unexpected metric {key:?}"),
        }
    }
    counts.sort();
    assert_eq!(
        counts,
        [
            ("delivered".to_owned(), 1),
            ("no_answer".to_owned(), 1),
            ("refused".to_owned(), 1),
            ("rejected".to_owned(), 1)
        ]
    );
    assert_eq!(timed, 3);
}
