//! Invoices on the wire (docs/api.md#invoices): the `Invoice` representation (its lines have the order line's
//! shape) and the collection's query string, whose cursor is keyed by the invoice number:
//! numbers order like issue times, so the number alone fixes a position.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use orderly_domain::invoice::{Invoice, InvoiceNumber, InvoiceQuery};

use crate::dto::money::MoneyResponse;
use crate::dto::orders::OrderLineResponse;
use crate::dto::timestamp;
use crate::extract::QueryDto;
use crate::extract::query::Faults;
use crate::pagination::{self, CursorCodec, CursorPosition, CursorScope};
use crate::problem::FieldError;

/// An invoice, issued when its order was confirmed. Never changes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Invoice, example = json!({
    "number": "2026-000042",
    "order_id": "0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70",
    "customer_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f",
    "issued_at": "2026-11-23T18:10:00.000Z",
    "lines": [{
        "product_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e60",
        "sku": "MUG-001",
        "name": "Enamel mug",
        "quantity": 2,
        "unit_price": {"amount": 1250, "currency": "EUR"},
        "line_total": {"amount": 2500, "currency": "EUR"}
    }],
    "subtotal": {"amount": 2500, "currency": "EUR"},
    "tax": {"amount": 500, "currency": "EUR"},
    "total": {"amount": 3000, "currency": "EUR"}
}))]
pub struct InvoiceResponse {
    /// `YYYY-NNNNNN`: the year of issue and the invoice's place in that year, starting at 1,
    /// without gaps.
    #[schema(
        pattern = "^[1-9][0-9]{3}-([1-9][0-9]{5}|0[1-9][0-9]{4}|00[1-9][0-9]{3}|000[1-9][0-9]{2}|0000[1-9][0-9]|00000[1-9])$",
        example = "2026-000042"
    )]
    pub number: String,
    /// The confirmed order it bills.
    pub order_id: Uuid,
    pub customer_id: Uuid,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:10:00.000Z")]
    pub issued_at: DateTime<Utc>,
    /// The order's lines, as placed.
    #[schema(min_items = 1, max_items = 50)]
    pub lines: Vec<OrderLineResponse>,
    pub subtotal: MoneyResponse,
    pub tax: MoneyResponse,
    pub total: MoneyResponse,
}

impl From<&Invoice> for InvoiceResponse {
    fn from(invoice: &Invoice) -> Self {
        Self {
            number: invoice.number.to_string(),
            order_id: invoice.order_id.as_uuid(),
            customer_id: invoice.customer_id.as_uuid(),
            issued_at: invoice.issued_at,
            lines: invoice.lines.iter().map(OrderLineResponse::from).collect(),
            subtotal: MoneyResponse::from(&invoice.subtotal),
            tax: MoneyResponse::from(&invoice.tax),
            total: MoneyResponse::from(&invoice.total),
        }
    }
}

/// The one order of the collection.
const NEWEST_FIRST: &str = "-issued_at";
/// The collection and its one order, in cursors.
const INVOICES: CursorScope<'static> = CursorScope { collection: "invoices", sort: NEWEST_FIRST };

sort_parameter!(InvoiceSortParameter as "InvoiceSort", "Sort orders of `GET /v1/invoices`: there is one.", [NEWEST_FIRST]);

/// `GET /v1/invoices`: the sort (there is one) and pagination
/// (`crate::pagination::PageParams`).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListInvoicesParams {
    /// Order of the collection: `-issued_at`, newest first, is the only one.
    #[param(value_type = Option<InvoiceSortParameter>)]
    sort: Option<String>,
    #[param(ignore)]
    limit: Option<String>,
    #[param(ignore)]
    cursor: Option<String>,
}

impl QueryDto for ListInvoicesParams {
    type Domain = InvoiceQuery;

    fn try_into_domain(self, cursors: &CursorCodec) -> Result<InvoiceQuery, Vec<FieldError>> {
        let mut faults = Faults::default();
        if self.sort.as_deref().is_some_and(|sort| sort != NEWEST_FIRST) {
            faults.push(FieldError::parameter(pagination::SORT, "invalid_value", "must be -issued_at"));
        }
        let limit = faults.check(pagination::parse_limit(self.limit.as_deref()));
        let after = faults.check(cursors.after(INVOICES, self.cursor.as_deref(), invoice_cursor));
        faults.finish(|| Some(InvoiceQuery { customer_id: None, after: after?, limit: limit? }))
    }
}

fn invoice_cursor(position: CursorPosition) -> Result<InvoiceNumber, FieldError> {
    InvoiceNumber::parse(&position.key).map_err(|_| pagination::unreadable_cursor())
}

/// The cursor of the page after the invoice `last`: the number alone is the position.
pub fn next_cursor(cursors: &CursorCodec, last: InvoiceNumber) -> String {
    cursors.encode(INVOICES, &CursorPosition::of_key(last.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_hold_the_number() {
        let codec = CursorCodec::new(b"k");
        let number = InvoiceNumber::new(2026, 42).unwrap();
        let cursor = next_cursor(&codec, number);
        assert_eq!(codec.after(INVOICES, Some(&cursor), invoice_cursor), Ok(Some(number)));
    }
}
