//! Invoices (docs/api.md#invoices): issued when an order is confirmed, immutable, numbered `YYYY-NNNNNN` per
//! calendar year, gapless and unique. The number is allocated by the store from a counter row
//! in the confirming transaction, so a rolled-back confirmation leaves no gap.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};

use crate::order::{OrderId, OrderLine};
use crate::pagination::PageLimit;
use crate::product::Money;
use crate::user::UserId;
use crate::validation::InvalidValue;

/// `YYYY-NNNNNN`: the year of issue and the 1-based sequence within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvoiceNumber {
    year: i32,
    sequence: u32,
}

impl InvoiceNumber {
    pub const MAX_SEQUENCE: u32 = 999_999;

    pub fn new(year: i32, sequence: u32) -> Option<Self> {
        ((1000..=9999).contains(&year) && (1..=Self::MAX_SEQUENCE).contains(&sequence))
            .then_some(Self { year, sequence })
    }

    /// The year an invoice issued at `at` is numbered in.
    pub fn year_of(at: DateTime<Utc>) -> i32 {
        at.year()
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue::new("invalid_format", "must look like 2026-000042");
        let (year, sequence) = raw.split_once('-').ok_or_else(invalid)?;
        if year.len() != 4 || sequence.len() != 6 || !year.bytes().chain(sequence.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let year: i32 = year.parse().map_err(|_| invalid())?;
        let sequence: u32 = sequence.parse().map_err(|_| invalid())?;
        Self::new(year, sequence).ok_or_else(invalid)
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn sequence(self) -> u32 {
        self.sequence
    }
}

impl fmt::Display for InvoiceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:06}", self.year, self.sequence)
    }
}

/// An issued invoice. Never changes once written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub number: InvoiceNumber,
    pub order_id: OrderId,
    pub customer_id: UserId,
    pub issued_at: DateTime<Utc>,
    pub lines: Vec<OrderLine>,
    pub subtotal: Money,
    pub tax: Money,
    pub total: Money,
}

/// `GET /v1/invoices`: newest first; `customer_id` forced to the caller for customers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvoiceQuery {
    pub customer_id: Option<UserId>,
    /// The last number seen (numbers order like issue time).
    pub after: Option<InvoiceNumber>,
    pub limit: PageLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_and_parse() {
        let number = InvoiceNumber::new(2026, 42).unwrap();
        assert_eq!(number.to_string(), "2026-000042");
        assert_eq!(InvoiceNumber::parse("2026-000042").unwrap(), number);
        for bad in ["2026-42", "26-000042", "2026000042", "2026-00004a", "2026-000000", "+026-000001", "2026-0000042"] {
            assert!(InvoiceNumber::parse(bad).is_err(), "{bad}");
        }
        assert!(InvoiceNumber::new(2026, 1_000_000).is_none());
        assert!(InvoiceNumber::new(2026, 3) < InvoiceNumber::new(2027, 1));
    }

    #[test]
    fn numbers_round_trip_and_order_like_their_text() {
        let mut numbers = Vec::new();
        for year in [1000, 2025, 2026, 9999] {
            for sequence in [1, 2, 9, 10, 42, 99_999, 100_000, 999_998, InvoiceNumber::MAX_SEQUENCE] {
                let number = InvoiceNumber::new(year, sequence).unwrap();
                let text = number.to_string();
                assert_eq!(text.len(), 11, "{text}");
                assert_eq!(InvoiceNumber::parse(&text), Ok(number));
                assert_eq!((number.year(), number.sequence()), (year, sequence));
                numbers.push((number, text));
            }
        }
        // Numbers sort like their text, so the newest-first listing can page by number.
        for (a, a_text) in &numbers {
            for (b, b_text) in &numbers {
                assert_eq!(a.cmp(b), a_text.cmp(b_text), "{a_text} vs {b_text}");
            }
        }
    }

    #[test]
    fn years_and_sequences_are_bounded() {
        assert!(InvoiceNumber::new(2026, 0).is_none());
        assert!(InvoiceNumber::new(999, 1).is_none());
        assert!(InvoiceNumber::new(10_000, 1).is_none());
        for bad in ["0999-000001", "2026-1000000", "-2026-000001", " 2026-000001", "2026-000001 ", "2026_000001", ""] {
            assert_eq!(InvoiceNumber::parse(bad).unwrap_err().code, "invalid_format", "{bad:?}");
        }
        assert_eq!(InvoiceNumber::parse("2026-999999").map(InvoiceNumber::sequence), Ok(999_999));
    }

    #[test]
    fn an_invoice_is_numbered_in_the_utc_year_of_issue() {
        let at = |raw: &str| DateTime::parse_from_rfc3339(raw).unwrap().with_timezone(&Utc);
        assert_eq!(InvoiceNumber::year_of(at("2026-12-31T23:59:59.999999Z")), 2026);
        assert_eq!(InvoiceNumber::year_of(at("2027-01-01T00:00:00Z")), 2027);
        // 00:30 on New Year's Day in Berlin is still the old year in UTC.
        assert_eq!(InvoiceNumber::year_of(at("2027-01-01T00:30:00+01:00")), 2026);
    }
}
