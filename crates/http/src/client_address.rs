//! Who is on the other end of a request, and which URL they used — believing forwarding headers
//! only from the reverse proxies the deployment trusts (`HttpSettings::trusted_proxies`).
//!
//! Owns two answers that must not be taken on a client's word:
//!
//! - [`client_ip`]: the address rate limits are keyed by (docs/api.md#rate-limiting). It is the TCP peer, unless the
//!   peer is a trusted proxy; then `X-Forwarded-For` is walked **from the right** (each proxy
//!   appends the address it received the request from), skipping entries that are themselves
//!   trusted proxies, and the first untrusted entry is the client. Everything to the left of
//!   it was written by the client and may be invented, so a client cannot escape its bucket by
//!   sending its own `X-Forwarded-For`. A malformed entry stops the walk at the last hop that
//!   was vouched for: a garbage value is never trusted, nor skipped over.
//! - [`request_origin`]: the scheme and host the client addressed, for absolute URLs such as
//!   the `Link` header of a collection (docs/api.md#pagination). `Forwarded` and `X-Forwarded-Proto`/`-Host` are
//!   believed only from a trusted proxy; otherwise the request's own `Host` and scheme are
//!   used, so nobody can make Orderly emit links to a host of their choosing.
//!
//! `Forwarded` (RFC 7239) is not read for the client address: the proxies Orderly is deployed
//! behind set `X-Forwarded-For`, and reading two chains invites them to disagree.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use actix_web::dev::RequestHead;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use ipnet::IpNet;

/// The de-facto standard header listing the addresses a request was forwarded for.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's IP address: the TCP peer, or — when the peer is a trusted proxy — the first
/// untrusted address of `X-Forwarded-For` read from the right. `None` when the connection has
/// no IP peer (a Unix socket, or actix's test requests without `peer_addr`).
pub fn client_ip(head: &RequestHead, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = head.peer_addr?.ip();
    Some(resolve_client_ip(peer, &forwarded_for(&head.headers), trusted_proxies))
}

/// The walk of [`client_ip`], given the peer and the `X-Forwarded-For` entries in the order
/// they were written (left to right, across repeated header lines).
pub fn resolve_client_ip(peer: IpAddr, forwarded_for: &[&str], trusted_proxies: &[IpNet]) -> IpAddr {
    let mut client = peer.to_canonical();
    if !is_trusted(client, trusted_proxies) {
        return client;
    }
    for entry in forwarded_for.iter().rev() {
        let Some(hop) = parse_forwarded_entry(entry) else {
            // Written by a hop we cannot vouch for; the proxy that passed it on is the best
            // answer we have.
            break;
        };
        client = hop;
        if !is_trusted(hop, trusted_proxies) {
            break;
        }
    }
    client
}

/// Whether `ip` (a peer or an `X-Forwarded-For` hop) is one of the trusted proxies.
pub fn is_trusted(ip: IpAddr, trusted_proxies: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted_proxies.iter().any(|network| network.contains(&ip))
}

/// Every `X-Forwarded-For` entry, left to right; a header line that is not text yields one
/// empty (so malformed) entry, which stops the walk there.
fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers.get_all(&X_FORWARDED_FOR).flat_map(|value| value.to_str().unwrap_or("").split(',')).map(str::trim).collect()
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`203.0.113.7:4711`,
/// `[2001:db8::1]:4711`) or in brackets, as some proxies write them. Anything else is `None`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok())?;
    Some(ip.to_canonical())
}

/// The scheme and host a client addressed, e.g. `https` and `api.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin {
    pub scheme: String,
    pub host: String,
}

/// The scheme and host of `req` as the client sees them. From a trusted proxy, its
/// `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` headers are believed (that is how a
/// TLS-terminating proxy says `https`); from anyone else they are ignored and the request's
/// own `Host` and scheme are used. A scheme other than `http`/`https`, or a host with characters
/// no host has, is replaced by the server's own, so a header cannot inject text into a URL.
pub fn request_origin(req: &HttpRequest, trusted_proxies: &[IpNet]) -> RequestOrigin {
    let own_scheme = req.uri().scheme_str().unwrap_or(if req.app_config().secure() { "https" } else { "http" });
    let own_host = req
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| req.uri().authority().map(|authority| authority.as_str()))
        .filter(|host| is_plausible_host(host))
        .unwrap_or_else(|| req.app_config().host());
    let peer_is_trusted = req.peer_addr().is_some_and(|peer| is_trusted(peer.ip(), trusted_proxies));
    if !peer_is_trusted {
        return RequestOrigin { scheme: own_scheme.to_owned(), host: own_host.to_owned() };
    }
    // actix's `ConnectionInfo` reads `Forwarded`, then `X-Forwarded-*`, then the request.
    let info = req.connection_info();
    let scheme = Some(info.scheme()).filter(|scheme| matches!(*scheme, "http" | "https")).unwrap_or(own_scheme);
    let host = Some(info.host()).filter(|host| is_plausible_host(host)).unwrap_or(own_host);
    RequestOrigin { scheme: scheme.to_owned(), host: host.to_owned() }
}

/// A host with an optional port: letters, digits, `-`, `.`, `_`, `~`, and `:`/`[`/`]` for ports
/// and IPv6 literals. Rules out anything that could end the URL or the `Link` header early.
fn is_plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use actix_web::test::TestRequest;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|net| net.parse().unwrap()).collect()
    }

    const CLIENT: &str = "203.0.113.7";

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() {
        let peer = ip(CLIENT);
        assert_eq!(resolve_client_ip(peer, &["198.51.100.1"], &[]), peer);
        assert_eq!(resolve_client_ip(peer, &["198.51.100.1"], &nets(&["10.0.0.0/8"])), peer);
        assert_eq!(resolve_client_ip(peer, &[], &[]), peer);
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client() {
        let proxies = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        let proxy = ip("10.0.0.2");
        assert_eq!(resolve_client_ip(proxy, &[CLIENT], &proxies), ip(CLIENT));
        // The client wrote the left entry itself; only the proxy's own entry counts.
        assert_eq!(resolve_client_ip(proxy, &["198.51.100.1", CLIENT], &proxies), ip(CLIENT));
        // Trusted hops (a chain of proxies) are skipped.
        assert_eq!(resolve_client_ip(proxy, &["198.51.100.1", CLIENT, "10.0.0.9", "127.0.0.1"], &proxies), ip(CLIENT));
    }

    #[test]
    fn a_trusted_proxy_without_forwarded_for_is_itself_the_client() {
        let proxy = ip("10.0.0.2");
        assert_eq!(resolve_client_ip(proxy, &[], &nets(&["10.0.0.0/8"])), proxy);
    }

    #[test]
    fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
        let proxies = nets(&["10.0.0.0/8"]);
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &["10.1.1.1", "10.0.0.9"], &proxies), ip("10.1.1.1"));
    }

    #[test]
    fn a_malformed_entry_stops_the_walk_at_the_last_trusted_hop() {
        let proxies = nets(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.2");
        for garbage in ["unknown", "", "1.2.3", "203.0.113.7 extra", "_hidden"] {
            assert_eq!(resolve_client_ip(proxy, &[CLIENT, garbage], &proxies), proxy, "{garbage:?}");
        }
        // Garbage after a trusted hop: that hop is the answer, never the address beyond it.
        assert_eq!(resolve_client_ip(proxy, &[CLIENT, "junk", "10.0.0.9"], &proxies), ip("10.0.0.9"));
    }

    #[test]
    fn entries_may_carry_ports_and_brackets_and_mapped_addresses_are_ipv4() {
        let proxies = nets(&["10.0.0.0/8", "::1/128"]);
        let proxy = ip("10.0.0.2");
        assert_eq!(resolve_client_ip(proxy, &["203.0.113.7:4711"], &proxies), ip(CLIENT));
        assert_eq!(resolve_client_ip(proxy, &["[2001:db8::1]:4711"], &proxies), ip("2001:db8::1"));
        assert_eq!(resolve_client_ip(proxy, &["[2001:db8::1]"], &proxies), ip("2001:db8::1"));
        assert_eq!(resolve_client_ip(proxy, &["::ffff:203.0.113.7"], &proxies), ip(CLIENT));
        // A dual-stack listener sees IPv4 peers as mapped IPv6 addresses; they are still trusted.
        let mapped_proxy = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped());
        assert_eq!(resolve_client_ip(mapped_proxy, &[CLIENT], &proxies), ip(CLIENT));
        assert_eq!(resolve_client_ip(IpAddr::V6(Ipv6Addr::LOCALHOST), &[CLIENT], &proxies), ip(CLIENT));
    }

    #[test]
    fn repeated_header_lines_form_one_list_and_non_text_lines_are_malformed() {
        let proxies = nets(&["10.0.0.0/8"]);
        let peer: SocketAddr = "10.0.0.2:50000".parse().unwrap();
        let request = TestRequest::default()
            .peer_addr(peer)
            .append_header((X_FORWARDED_FOR, "198.51.100.1, 203.0.113.7"))
            .append_header((X_FORWARDED_FOR, "10.0.0.9"))
            .to_http_request();
        assert_eq!(client_ip(request.head(), &proxies), Some(ip(CLIENT)));

        let request = TestRequest::default()
            .peer_addr(peer)
            .append_header((X_FORWARDED_FOR, CLIENT))
            .append_header((X_FORWARDED_FOR, header::HeaderValue::from_bytes(b"\xff").unwrap()))
            .to_http_request();
        assert_eq!(client_ip(request.head(), &proxies), Some(peer.ip()));

        assert_eq!(client_ip(TestRequest::default().to_http_request().head(), &proxies), None);
    }

    fn forwarded_request(peer: &str) -> HttpRequest {
        TestRequest::get()
            .uri("/v1/users?limit=1")
            .peer_addr(peer.parse().unwrap())
            .insert_header((header::HOST, "orderly.internal:8080"))
            .insert_header(("x-forwarded-host", "shop.example"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request()
    }

    #[test]
    fn forwarded_host_and_proto_are_ignored_from_an_untrusted_peer() {
        let origin = request_origin(&forwarded_request("203.0.113.7:50000"), &nets(&["10.0.0.0/8"]));
        assert_eq!(origin, RequestOrigin { scheme: "http".into(), host: "orderly.internal:8080".into() });
        let origin = request_origin(&forwarded_request("203.0.113.7:50000"), &[]);
        assert_eq!(origin.host, "orderly.internal:8080");
    }

    #[test]
    fn forwarded_host_and_proto_are_believed_from_a_trusted_peer() {
        let origin = request_origin(&forwarded_request("10.0.0.2:50000"), &nets(&["10.0.0.0/8"]));
        assert_eq!(origin, RequestOrigin { scheme: "https".into(), host: "shop.example".into() });

        let rfc7239 = TestRequest::get()
            .peer_addr("10.0.0.2:50000".parse().unwrap())
            .insert_header((header::HOST, "orderly.internal"))
            .insert_header((header::FORWARDED, "for=203.0.113.7;proto=https;host=api.example"))
            .to_http_request();
        let origin = request_origin(&rfc7239, &nets(&["10.0.0.0/8"]));
        assert_eq!(origin, RequestOrigin { scheme: "https".into(), host: "api.example".into() });
    }

    #[test]
    fn implausible_hosts_and_schemes_fall_back_to_the_servers_own() {
        let request = TestRequest::get()
            .peer_addr("10.0.0.2:50000".parse().unwrap())
            .insert_header((header::HOST, "orderly.internal"))
            .insert_header(("x-forwarded-host", "evil.example>; rel=\"prev\""))
            .insert_header(("x-forwarded-proto", "javascript"))
            .to_http_request();
        let origin = request_origin(&request, &nets(&["10.0.0.0/8"]));
        assert_eq!(origin, RequestOrigin { scheme: "http".into(), host: "orderly.internal".into() });

        let request = TestRequest::get().insert_header((header::HOST, "a b")).to_http_request();
        assert_eq!(request_origin(&request, &[]).host, request.app_config().host());
    }
}
