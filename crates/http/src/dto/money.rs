//! Money on the wire (docs/api.md#money-and-time): `{"amount": 1999, "currency": "EUR"}`, integer minor units and an
//! ISO 4217 code, never a float. One currency per deployment: a request naming another is a
//! validation fault, reported with every other fault of the body. Shared by every resource
//! that carries a price.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use orderly_domain::product::{Currency, InvalidMoney, Money};
use orderly_domain::validation::{FieldViolation, Violations};

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Money, example = json!({"amount": 1999, "currency": "EUR"}))]
pub struct MoneyResponse {
    /// Integer minor units (cents for EUR); never a float.
    #[schema(minimum = 0, example = 1999)]
    pub amount: i64,
    /// ISO 4217 code: the deployment's currency.
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
}

impl From<&Money> for MoneyResponse {
    fn from(money: &Money) -> Self {
        Self { amount: money.amount(), currency: money.currency().as_str().to_owned() }
    }
}

/// An amount of money in a request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 1999, "currency": "EUR"}))]
pub struct MoneyInput {
    /// Integer minor units (cents for EUR), 0–1,000,000,000,000; never a float.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, example = 1999)]
    amount: i64,
    /// ISO 4217 code; must be the deployment's currency (`EUR` unless configured otherwise).
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    currency: String,
}

impl MoneyInput {
    /// The amount as the domain takes it, in `deployment`'s currency. Every fault is reported,
    /// each under `field` (`unit_price/amount`, `unit_price/currency`): a negative amount and
    /// a foreign currency together are two faults, not the first of them.
    pub fn parse(self, field: &str, deployment: &Currency) -> Result<Money, Vec<FieldViolation>> {
        let mut violations = Violations::new();
        // `Money::parse` stops at its first fault, so the amount and the currency are each
        // checked on their own first (paired with a value known to be valid).
        let amount = violations
            .check(Money::parse(self.amount, deployment.as_str(), deployment).map(|_| self.amount).map_err(at_member));
        let currency =
            violations.check(Money::parse(0, &self.currency, deployment).map(|_| self.currency).map_err(at_member));
        let money = match (amount, currency) {
            (Some(amount), Some(currency)) => {
                violations.check(Money::parse(amount, &currency, deployment).map_err(at_member))
            }
            _ => None,
        };
        match money {
            Some(money) if violations.is_empty() => Ok(money),
            _ => Err(violations.into_vec().into_iter().map(|violation| violation.within(field)).collect()),
        }
    }
}

/// A fault of `Money::parse` at the member of [`MoneyInput`] it is in.
fn at_member(fault: InvalidMoney) -> FieldViolation {
    match fault {
        InvalidMoney::Amount(fault) => fault.at("amount"),
        InvalidMoney::Currency(fault) => fault.at("currency"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn input(amount: i64, currency: &str) -> MoneyInput {
        MoneyInput { amount, currency: currency.to_owned() }
    }

    fn faults(result: Result<Money, Vec<FieldViolation>>) -> Vec<(String, &'static str)> {
        result.unwrap_err().into_iter().map(|v| (v.path.join("/"), v.code)).collect()
    }

    #[test]
    fn a_valid_price_parses() {
        let money = input(1999, "EUR").parse("unit_price", &eur()).unwrap();
        assert_eq!((money.amount(), money.currency().as_str()), (1999, "EUR"));
        assert_eq!(MoneyResponse::from(&money), MoneyResponse { amount: 1999, currency: "EUR".into() });
    }

    #[test]
    fn every_fault_is_reported_under_the_field() {
        assert_eq!(
            faults(input(-1, "USD").parse("unit_price", &eur())),
            vec![
                ("unit_price/amount".to_owned(), "out_of_range"),
                ("unit_price/currency".to_owned(), "unsupported_currency")
            ]
        );
        assert_eq!(
            faults(input(5, "eur").parse("unit_price", &eur())),
            vec![("unit_price/currency".to_owned(), "invalid_format")]
        );
    }
}
