//! What the buckets decided for one request, and how that is written on the response: the
//! `RateLimit-Policy` and `RateLimit` fields of the IETF draft "RateLimit header fields for
//! HTTP" (structured-field lists, one item per policy that answered) and, for a refusal, the
//! seconds of `Retry-After`.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use super::Policy;
#[cfg(test)]
use super::PolicyName;
use super::bucket::{Decision, whole_seconds_up};

/// The quota policies that apply to the response, e.g. `"default";q=600;w=60`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// What is left of each, e.g. `"default";r=599;t=1`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// One policy's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub policy: Policy,
    pub decision: Decision,
}

impl Outcome {
    fn policy_item(&self) -> String {
        format!("\"{}\";q={};w={}", self.policy.name.as_str(), self.policy.limit, self.policy.window.as_secs())
    }

    fn state_item(&self) -> String {
        let reset = whole_seconds_up(self.decision.reset_after);
        format!("\"{}\";r={};t={reset}", self.policy.name.as_str(), self.decision.remaining)
    }
}

/// The decisions of every policy that applied and could be checked (a policy whose store
/// failed is absent: the request was not limited by it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    outcomes: Vec<Outcome>,
}

impl Verdict {
    pub fn new(outcomes: Vec<Outcome>) -> Self {
        Self { outcomes }
    }

    /// The refusal a client has to wait out, if any policy refused: the one with the longest
    /// wait, so that retrying after its `Retry-After` is not refused by another policy.
    pub fn refusal(&self) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .filter(|outcome| !outcome.decision.allowed)
            .max_by_key(|outcome| outcome.decision.retry_after)
    }

    /// `Retry-After` for a refusal: whole seconds until a token is available, at least 1 (a
    /// client told 0 would retry at once and be refused again).
    pub fn retry_after_seconds(refusal: &Outcome) -> u32 {
        u32::try_from(whole_seconds_up(refusal.decision.retry_after).max(1)).unwrap_or(u32::MAX)
    }

    /// Sets `RateLimit-Policy` and `RateLimit`; neither when no policy answered.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if self.outcomes.is_empty() {
            return;
        }
        let items = |item: fn(&Outcome) -> String| self.outcomes.iter().map(item).collect::<Vec<_>>().join(", ");
        // Names, digits, quotes and punctuation only: always a valid header value.
        for (name, value) in [(RATELIMIT_POLICY, items(Outcome::policy_item)), (RATELIMIT, items(Outcome::state_item))]
        {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

#[cfg(test)]
impl Verdict {
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    pub fn policies(&self) -> impl Iterator<Item = PolicyName> + '_ {
        self.outcomes.iter().map(|outcome| outcome.policy.name)
    }

    pub fn outcome(&self, name: PolicyName) -> Option<&Outcome> {
        self.outcomes.iter().find(|outcome| outcome.policy.name == name)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::*;

    fn outcome(name: PolicyName, limit: u32, allowed: bool, remaining: u32, reset_ms: u64, retry_ms: u64) -> Outcome {
        Outcome {
            policy: Policy::per_minute(name, NonZeroU32::new(limit).unwrap()),
            decision: Decision {
                allowed,
                remaining,
                reset_after: Duration::from_millis(reset_ms),
                retry_after: Duration::from_millis(retry_ms),
            },
        }
    }

    fn headers(verdict: &Verdict) -> (Option<String>, Option<String>) {
        let mut headers = HeaderMap::new();
        verdict.write_headers(&mut headers);
        let text = |name| headers.get(name).map(|value: &HeaderValue| value.to_str().unwrap().to_owned());
        (text(RATELIMIT_POLICY), text(RATELIMIT))
    }

    #[test]
    fn one_policy_is_one_item_with_seconds_rounded_up() {
        let verdict = Verdict::new(vec![outcome(PolicyName::Default, 600, true, 599, 100, 0)]);
        let (policy, state) = headers(&verdict);
        assert_eq!(policy.as_deref(), Some("\"default\";q=600;w=60"));
        assert_eq!(state.as_deref(), Some("\"default\";r=599;t=1"));
        assert!(verdict.refusal().is_none());
    }

    #[test]
    fn the_login_route_lists_both_policies_in_both_headers() {
        let verdict = Verdict::new(vec![
            outcome(PolicyName::Default, 600, true, 598, 200, 0),
            outcome(PolicyName::Login, 10, true, 9, 6000, 0),
        ]);
        let (policy, state) = headers(&verdict);
        assert_eq!(policy.as_deref(), Some("\"default\";q=600;w=60, \"login\";q=10;w=60"));
        assert_eq!(state.as_deref(), Some("\"default\";r=598;t=1, \"login\";r=9;t=6"));
    }

    #[test]
    fn no_policy_no_headers() {
        assert_eq!(headers(&Verdict::default()), (None, None));
    }

    #[test]
    fn the_longest_wait_is_the_refusal_and_retry_after_is_at_least_a_second() {
        let verdict = Verdict::new(vec![
            outcome(PolicyName::Default, 600, false, 0, 60_000, 100),
            outcome(PolicyName::Login, 10, false, 0, 60_000, 4_500),
        ]);
        let refusal = verdict.refusal().unwrap();
        assert_eq!(refusal.policy.name, PolicyName::Login);
        assert_eq!(Verdict::retry_after_seconds(refusal), 5);
        let default = verdict.outcome(PolicyName::Default).unwrap();
        assert_eq!(Verdict::retry_after_seconds(default), 1);
        assert_eq!(Verdict::retry_after_seconds(&outcome(PolicyName::Default, 1, false, 0, 0, 0)), 1);
        assert_eq!(headers(&verdict).1.as_deref(), Some("\"default\";r=0;t=60, \"login\";r=0;t=60"));
    }
}
