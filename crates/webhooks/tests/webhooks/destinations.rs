//! The SSRF guard at delivery time: a destination the policy refuses gets no request — no
//! connection at all — whether the URL names the address, spells it in disguise, or names a
//! host that resolves to it. Every target here is on loopback: the receivers stand in for the
//! internal services a refused delivery would have reached.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs as _};
use std::time::Duration;

use orderly_domain::ports::SendOutcome;
use orderly_domain::webhook::{DestinationPolicy, classify};
use orderly_webhooks::HttpWebhookSender;
use orderly_webhooks::testing::{Receiver, loopback_policy, verify};

use crate::fixtures::{SECRET, SETTLE, event, send, settings, strict_http_policy};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn refused_reason(outcome: SendOutcome) -> String {
    match outcome {
        SendOutcome::NoAnswer { reason } if reason.starts_with("refused destination: ") => reason,
        other => panic!("expected a refused destination, got {other:?}"),
    }
}

fn assert_untouched(receiver: &Receiver) {
    std::thread::sleep(SETTLE);
    assert!(receiver.requests().is_empty(), "the receiver got {:?}", receiver.requests());
    assert_eq!(receiver.connections(), 0, "a connection was made");
}

#[test]
fn loopback_addresses_in_any_spelling_are_refused_before_connecting() {
    let receiver = Receiver::start();
    let port = receiver.port();
    let sender = HttpWebhookSender::new(settings(strict_http_policy(), Duration::from_secs(5))).unwrap();

    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.0.0.2:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://LOCALHOST.:{port}/"),
        format!("http://api.localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://0.0.0.0:{port}/"),
    ] {
        let reason = refused_reason(send(&sender, &url, &event()).outcome);
        assert!(reason.contains("loopback") || reason.contains("unspecified"), "{url}: {reason}");
    }
    assert_eq!(
        refused_reason(send(&sender, &format!("http://127.0.0.1:{port}/"), &event()).outcome),
        "refused destination: 127.0.0.1 is a loopback address"
    );
    assert_untouched(&receiver);
}

#[test]
fn a_name_that_resolves_to_a_refused_address_is_refused_before_connecting() {
    let receiver = Receiver::start();
    let port = receiver.port();
    let sender = HttpWebhookSender::with_names(
        settings(strict_http_policy(), Duration::from_secs(5)),
        vec![("hooks.example.test".into(), vec![LOOPBACK])],
    )
    .unwrap();

    let reason = refused_reason(send(&sender, &format!("http://hooks.example.test:{port}/"), &event()).outcome);

    assert_eq!(reason, "refused destination: hooks.example.test resolved to 127.0.0.1, a loopback address");
    assert_untouched(&receiver);
}

#[test]
fn one_refused_address_among_allowed_ones_refuses_the_name() {
    let receiver = Receiver::start();
    let port = receiver.port();
    // Loopback is allowed here, 10.0.0.0/8 is not. The allowed address comes first, so a
    // guard that let the name through would reach the receiver and be caught.
    let sender = HttpWebhookSender::with_names(
        settings(loopback_policy(), Duration::from_secs(5)),
        vec![("rebinding.example.test".into(), vec![LOOPBACK, "10.0.0.5".parse().unwrap()])],
    )
    .unwrap();

    let reason = refused_reason(send(&sender, &format!("http://rebinding.example.test:{port}/"), &event()).outcome);

    assert_eq!(reason, "refused destination: rebinding.example.test resolved to 10.0.0.5, a private address");
    assert_untouched(&receiver);
}

#[test]
fn an_allowed_name_is_connected_to_at_the_address_it_resolved_to() {
    let receiver = Receiver::start();
    let port = receiver.port();
    let sender = HttpWebhookSender::with_names(
        settings(loopback_policy(), Duration::from_secs(5)),
        vec![("hooks.example.test".into(), vec![LOOPBACK])],
    )
    .unwrap();

    let report = send(&sender, &format!("http://hooks.example.test:{port}/in"), &event());

    assert_eq!(report.outcome, SendOutcome::Delivered { status: 200 });
    let request = receiver.requests().remove(0);
    assert_eq!(request.header("host"), Some(format!("hooks.example.test:{port}").as_str()));
    assert!(verify(SECRET, &request).is_ok());
}

#[test]
fn a_name_that_does_not_resolve_is_no_answer() {
    let sender =
        HttpWebhookSender::with_names(settings(loopback_policy(), Duration::from_secs(5)), Vec::new()).unwrap();
    let report = send(&sender, "http://nowhere.example.test:9/", &event());
    assert_eq!(report.outcome, SendOutcome::NoAnswer { reason: "name did not resolve".into() });
}

#[test]
fn the_system_resolver_is_guarded_too() {
    // `localhost` never reaches a resolver (the URL check knows it), so look in /etc/hosts for
    // another name that the system resolves to loopback only (Debian's `ip6-localhost`, the
    // machine's own name, ...). Without one, there is nothing to check here.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let candidate = hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split_whitespace().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|name| {
            let name = name.to_ascii_lowercase();
            name != "localhost" && !name.ends_with(".localhost")
        })
        .find(|name| {
            (name.as_str(), 0)
                .to_socket_addrs()
                .map(|addresses| {
                    let addresses: Vec<_> = addresses.collect();
                    !addresses.is_empty() && addresses.iter().all(|address| classify(address.ip()).is_some())
                })
                .unwrap_or(false)
        });
    let Some(name) = candidate else {
        eprintln!("the_system_resolver_is_guarded_too: no name in /etc/hosts resolves to loopback only; skipped");
        return;
    };
    let receiver = Receiver::start();
    let sender = HttpWebhookSender::new(settings(strict_http_policy(), Duration::from_secs(5))).unwrap();

    let reason = refused_reason(send(&sender, &format!("http://{name}:{}/", receiver.port()), &event()).outcome);

    assert!(reason.starts_with(&format!("refused destination: {name} resolved to ")), "{reason}");
    assert_untouched(&receiver);
}

#[test]
fn localhost_is_reachable_only_where_the_policy_allows_loopback() {
    let receiver = Receiver::start();
    let url = format!("http://localhost:{}/", receiver.port());
    let allowed = HttpWebhookSender::new(settings(loopback_policy(), Duration::from_secs(5))).unwrap();
    assert_eq!(send(&allowed, &url, &event()).outcome, SendOutcome::Delivered { status: 200 });
    assert_eq!(receiver.requests().len(), 1);
}

#[test]
fn plain_http_is_refused_unless_allowed() {
    let receiver = Receiver::start();
    let https_only = DestinationPolicy { allow_http: false, ..loopback_policy() };
    let sender = HttpWebhookSender::new(settings(https_only, Duration::from_secs(5))).unwrap();

    let reason = refused_reason(send(&sender, &receiver.url("/"), &event()).outcome);

    assert_eq!(reason, "refused destination: the URL must use https");
    assert_untouched(&receiver);
}
