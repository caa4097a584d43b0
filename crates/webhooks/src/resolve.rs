//! The SSRF guard at connection time: the only name resolver the sender's HTTP client has.
//!
//! Owns resolving a host name (the system resolver, on a blocking thread of reqwest's own
//! runtime) and refusing it when *any* address it resolves to is refused by the
//! [`DestinationPolicy`] — the client then connects only to addresses this resolver returned,
//! so the address checked is the address connected to, with no second lookup in between.
//! Hosts that are IP literals never reach a resolver: the sender checks the URL itself before
//! every send. Must not touch: the policy's rules (the domain's) or how a failure is reported.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;

use orderly_domain::webhook::{DestinationPolicy, DestinationRefused};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Turns a host name into its addresses (blocking).
pub(crate) type Lookup = Arc<dyn Fn(&str) -> std::io::Result<Vec<IpAddr>> + Send + Sync>;

/// Why a name gave no address to connect to. Found again in reqwest's error chain by the
/// sender, which words it for the admin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    #[error("the name did not resolve")]
    NotFound,
    #[error("{name} resolved to a refused address: {refused}")]
    Refused { name: String, refused: DestinationRefused },
    #[error("the name could not be resolved here")]
    Unavailable,
}

/// The system resolver (`getaddrinfo`: `/etc/hosts`, then DNS).
pub(crate) fn system_lookup() -> Lookup {
    Arc::new(|name: &str| Ok((name, 0).to_socket_addrs()?.map(|address| address.ip()).collect()))
}

/// The policy-checking resolver installed with `ClientBuilder::dns_resolver`.
pub(crate) struct GuardedResolver {
    policy: DestinationPolicy,
    lookup: Lookup,
}

impl GuardedResolver {
    pub(crate) fn new(policy: DestinationPolicy, lookup: Lookup) -> Self {
        Self { policy, lookup }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_owned();
        let policy = self.policy.clone();
        let lookup = Arc::clone(&self.lookup);
        Box::pin(async move {
            // reqwest's blocking client polls this on its own (current-thread) runtime, whose
            // blocking pool keeps the system resolver off its only worker. If the attempt
            // times out first, the lookup finishes on its thread and is dropped.
            let handle = tokio::runtime::Handle::try_current().map_err(|_| boxed(ResolveError::Unavailable))?;
            let addresses = {
                let name = name.clone();
                handle.spawn_blocking(move || lookup(&name)).await
            }
            .map_err(|_| boxed(ResolveError::Unavailable))?
            .map_err(|_| boxed(ResolveError::NotFound))?;
            let addresses = check(&policy, &name, addresses).map_err(boxed)?;
            let addresses: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addresses)
        })
    }
}

/// The addresses to connect to: all of them, if every one is allowed; none otherwise (a name
/// that mixes a public and an internal address is a classic rebinding trick).
fn check(policy: &DestinationPolicy, name: &str, addresses: Vec<IpAddr>) -> Result<Vec<IpAddr>, ResolveError> {
    if addresses.is_empty() {
        return Err(ResolveError::NotFound);
    }
    for address in &addresses {
        policy.check_address(*address).map_err(|refused| ResolveError::Refused { name: name.to_owned(), refused })?;
    }
    Ok(addresses)
}

fn boxed(error: ResolveError) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn strict() -> DestinationPolicy {
        DestinationPolicy::default()
    }

    #[test]
    fn one_refused_address_refuses_the_name() {
        let mixed = vec!["93.184.215.14".parse().unwrap(), "10.0.0.5".parse().unwrap()];
        match check(&strict(), "hooks.example.com", mixed) {
            Err(ResolveError::Refused { name, refused: DestinationRefused::Address(ip, _) }) => {
                assert_eq!(name, "hooks.example.com");
                assert_eq!(ip, "10.0.0.5".parse::<IpAddr>().unwrap());
            }
            other => panic!("{other:?}"),
        }
        let mapped = vec!["::ffff:169.254.169.254".parse().unwrap()];
        assert!(matches!(check(&strict(), "x", mapped), Err(ResolveError::Refused { .. })));
    }

    #[test]
    fn public_addresses_pass_and_nothing_is_not_found() {
        let public: Vec<IpAddr> =
            vec!["93.184.215.14".parse().unwrap(), "2606:2800:21f:cb07:6820:80da:af6b:8b2c".parse().unwrap()];
        assert_eq!(check(&strict(), "x", public.clone()).unwrap(), public);
        assert!(matches!(check(&strict(), "x", vec![]), Err(ResolveError::NotFound)));
    }
}
