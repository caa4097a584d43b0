//! The JSON body pipeline after the bytes have arrived — `orderly_http::extract::json::parse`:
//! UTF-8, the nesting-depth pre-scan, `serde_json`, the shape collector and each DTO's
//! `try_into_domain` rules. It is exactly what `ValidJson<T>` runs inside actix, minus the
//! media-type and size checks. Arbitrary bytes must yield `Ok` or an `ApiError`, never a panic,
//! for every body the order and product endpoints accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orderly_domain::product::Currency;
use orderly_http::dto::orders::{ChangeOrderStatusRequest, PlaceOrderRequest};
use orderly_http::dto::products::{AdjustStockRequest, CreateProductRequest, UpdateProductRequest};
use orderly_http::extract::json::{BodyContext, MAX_BODY_BYTES, parse};

fuzz_target!(|data: &[u8]| {
    // The extractor refuses anything larger before parsing.
    if data.len() > MAX_BODY_BYTES {
        return;
    }
    let Ok(currency) = Currency::parse("EUR") else { return };
    let context = BodyContext { currency };

    let accepted = [
        parse::<PlaceOrderRequest>(data, &context).is_ok(),
        parse::<ChangeOrderStatusRequest>(data, &context).is_ok(),
        parse::<CreateProductRequest>(data, &context).is_ok(),
        parse::<UpdateProductRequest>(data, &context).is_ok(),
        parse::<AdjustStockRequest>(data, &context).is_ok(),
    ];
    // Whatever a DTO accepted must at least have been UTF-8 text.
    if accepted.iter().any(|ok| *ok) {
        assert!(std::str::from_utf8(data).is_ok(), "a non-UTF-8 body was accepted");
    }
});
