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
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use ipnet::Ipv6Net;

use super::verdict::Verdict;
use super::{CallerKeys, REFUSED_REQUESTS_METRIC};
use crate::ApiState;
use crate::client_address;
use crate::extract::caller::{bearer_token, verify_once};
use crate::middleware::problem_responses::ProblemContext;
use crate::problem::ApiError;

/// The login route; with `POST`, it draws from the `login` bucket.
pub const LOGIN_PATH: &str = "/v1/auth/tokens";
/// The registration route; with `POST`, it draws from the `login` bucket too
/// (docs/api.md#authentication-and-authorisation): each registration costs an argon2 hash, as a
/// login does, so it must not be cheaper to flood.
pub const REGISTRATION_PATH: &str = "/v1/users";

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
        let error = ApiError::rate_limited(Verdict::retry_after_seconds(refusal));
        let mut response = ProblemContext::of(req.request()).render(&error);
        verdict.write_headers(response.headers_mut());
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    verdict.write_headers(response.headers_mut());
    Ok(response.map_into_left_body())
}

/// The request's bucket keys: the user of a valid bearer token (verified here, as an invalid
/// token must not buy a fresh bucket; the `Caller` extractor reuses the outcome), and the
/// client address.
fn caller_keys(req: &ServiceRequest, state: &ApiState) -> CallerKeys {
    let address = client_address::client_ip(req.head(), &state.settings.trusted_proxies)
        .map_or_else(|| "ip:unknown".to_owned(), address_key);
    let mut authorization = req.headers().get_all(header::AUTHORIZATION);
    let token = match (authorization.next(), authorization.next()) {
        (Some(value), None) => value.to_str().ok().and_then(bearer_token),
        // None, or several: the extractor refuses several, so they identify nobody.
        _ => None,
    };
    let user = token.and_then(|token| verify_once(req.request(), state, token)).map(|actor| actor.user_id);
    let caller = user.map_or_else(|| address.clone(), |user_id| format!("user:{user_id}"));
    CallerKeys { caller, address }
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
    use super::*;

    #[test]
    fn ipv4_clients_are_keyed_by_address_and_ipv6_clients_by_their_64() {
        assert_eq!(address_key("203.0.113.7".parse().unwrap()), "ip:203.0.113.7");
        assert_eq!(address_key("2001:db8:1:2:aaaa::1".parse().unwrap()), "ip:2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::9".parse().unwrap()), "ip:2001:db8:1:2::/64");
        assert_ne!(address_key("2001:db8:1:3::1".parse().unwrap()), "ip:2001:db8:1:2::/64");
    }
}
