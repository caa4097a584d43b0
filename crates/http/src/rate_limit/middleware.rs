//! The `enforce` middleware: picks the buckets of a request, takes a token from each, and
//! either refuses the request with a complete 429 problem or lets it through; either way the
//! response carries the RateLimit fields.
//!
//! It runs before routing (a refused request must never reach a handler), so the routes of the
//! login bucket (logging in and registering) are recognised by method and path — the
//! percent-decoded path the router matches on, so that `/v1/auth/%74okens` or `/v1/%75sers` is
//! no way around the login bucket. It sits outside
//! `problem_responses` so that its fields land on every response, problems included, and
//! renders its own 429 with [`ProblemContext`] exactly as that middleware would.

use std::net::IpAddr;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use ipnet::Ipv6Net;
use orderly_domain::rate_limit::{CallerKeys, Outcome, Verdict};

use super::REFUSED_REQUESTS_METRIC;
use crate::ApiState;
use crate::client_address;
use crate::extract::caller::verified_claims;
use crate::middleware::problem_responses::ProblemContext;
use crate::problem::ApiError;

/// The login route; with `POST`, it draws from the `login` bucket.
pub const LOGIN_PATH: &str = "/v1/auth/tokens";
/// The registration route; with `POST`, it draws from the `login` bucket too
/// (docs/api.md#authentication-and-authorisation): each registration costs an argon2 hash, as a
/// login does, so it must not be cheaper to flood.
pub const REGISTRATION_PATH: &str = "/v1/users";

/// The quota policies that apply to the response, e.g. `"default";q=600;w=60`.
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// What is left of each, e.g. `"default";r=599;t=1`.
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned().filter(|state| state.rate_limits.is_active())
    else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let hashes_a_password =
        req.method() == Method::POST && matches!(req.match_info().as_str(), LOGIN_PATH | REGISTRATION_PATH);
    let verdict = state.rate_limits.check(&caller_keys(&req, &state), hashes_a_password).await;

    if let Some(refusal) = verdict.refusal() {
        metrics::counter!(REFUSED_REQUESTS_METRIC, "policy" => refusal.policy.name.as_str()).increment(1);
        let error = ApiError::rate_limited(refusal.retry_after_seconds());
        let mut response = ProblemContext::of(req.request()).render(&error);
        write_headers(&verdict, response.headers_mut());
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    write_headers(&verdict, response.headers_mut());
    Ok(response.map_into_left_body())
}

/// The request's bucket keys: the user of a validly signed bearer token (verified here, as an
/// invalid token must not buy a fresh bucket; the revocation middleware and the `Caller`
/// extractor reuse the outcome), and the client address.
fn caller_keys(req: &ServiceRequest, state: &ApiState) -> CallerKeys {
    let address = client_address::client_ip(req.head(), &state.settings.trusted_proxies)
        .map_or_else(|| "ip:unknown".to_owned(), address_key);
    let user = verified_claims(req.request(), state).map(|claims| claims.user_id);
    let caller = user.map_or_else(|| address.clone(), |user_id| format!("user:{user_id}"));
    CallerKeys { caller, address }
}

/// Sets `RateLimit-Policy` and `RateLimit`; neither when no policy answered.
fn write_headers(verdict: &Verdict, headers: &mut HeaderMap) {
    let Some((policy, state)) = header_values(verdict) else { return };
    for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, state)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

/// The values of `RateLimit-Policy` (the quota policies that apply, e.g.
/// `"default";q=600;w=60`) and `RateLimit` (what is left of each, e.g. `"default";r=599;t=1`):
/// structured-field lists, one item per policy that answered; `None` when none did. Names,
/// digits, quotes and punctuation only: always valid header values.
fn header_values(verdict: &Verdict) -> Option<(String, String)> {
    if verdict.is_empty() {
        return None;
    }
    let items = |item: fn(&Outcome) -> String| verdict.outcomes().iter().map(item).collect::<Vec<_>>().join(", ");
    let policy =
        |o: &Outcome| format!("\"{}\";q={};w={}", o.policy.name.as_str(), o.policy.limit, o.policy.window.as_secs());
    let state = |o: &Outcome| {
        format!("\"{}\";r={};t={}", o.policy.name.as_str(), o.decision.remaining, o.decision.seconds_until_full())
    };
    Some((items(policy), items(state)))
}

/// The key of a client address. An IPv6 client is keyed by its /64, the block a single
/// subscriber is usually given: keyed by address, it could take a fresh bucket per request.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match Ipv6Net::new(v6, 64) {
            Ok(network) => format!("ip:{}", network.trunc()),
            Err(_) => format!("ip:{v6}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use orderly_domain::rate_limit::{Decision, Policy, PolicyName};

    use super::*;

    fn outcome(name: PolicyName, limit: u32, allowed: bool, remaining: u32, reset_ms: u64) -> Outcome {
        Outcome {
            policy: Policy::per_minute(name, NonZeroU32::new(limit).unwrap()),
            decision: Decision {
                allowed,
                remaining,
                reset_after: Duration::from_millis(reset_ms),
                retry_after: Duration::ZERO,
            },
        }
    }

    #[test]
    fn one_policy_is_one_item_with_seconds_rounded_up() {
        let verdict = Verdict::new(vec![outcome(PolicyName::Default, 600, true, 599, 100)]);
        let (policy, state) = header_values(&verdict).unwrap();
        assert_eq!(policy, "\"default\";q=600;w=60");
        assert_eq!(state, "\"default\";r=599;t=1");
    }

    #[test]
    fn the_login_route_lists_both_policies_in_both_fields() {
        let verdict = Verdict::new(vec![
            outcome(PolicyName::Default, 600, true, 598, 200),
            outcome(PolicyName::Login, 10, false, 0, 60_000),
        ]);
        let (policy, state) = header_values(&verdict).unwrap();
        assert_eq!(policy, "\"default\";q=600;w=60, \"login\";q=10;w=60");
        assert_eq!(state, "\"default\";r=598;t=1, \"login\";r=0;t=60");
        assert_eq!(header_values(&Verdict::default()), None, "no policy answered, no fields");
    }

    #[test]
    fn ipv4_clients_are_keyed_by_address_and_ipv6_clients_by_their_64() {
        assert_eq!(address_key("203.0.113.7".parse().unwrap()), "ip:203.0.113.7");
        assert_eq!(address_key("2001:db8:1:2:aaaa::1".parse().unwrap()), "ip:2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::9".parse().unwrap()), "ip:2001:db8:1:2::/64");
        assert_ne!(address_key("2001:db8:1:3::1".parse().unwrap()), "ip:2001:db8:1:2::/64");
    }
}
