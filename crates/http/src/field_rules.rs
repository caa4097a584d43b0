//! The domain's text rules stated in the OpenAPI document, so that a client (or a fuzzer) can
//! tell a well-formed value from one that will be refused with 422 (or 400 for `q`).
//!
//! utoipa takes a `pattern` only as a literal in the DTO attributes, so the patterns live here,
//! next to the tests that hold each of them to the domain rule it describes
//! (`orderly_domain::product::ProductName::parse` and friends): a pattern that accepted what the
//! domain refuses would send fuzzers' "valid" values to a 422, one that refused what the domain
//! accepts would hide real input. [`describe`] writes them into the document, finding each
//! field with `property_of` (which `crate::openapi` uses too).

use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{Components, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, RefOr};

/// Any character but a control character (`char::is_control`: U+0000–U+001F, U+007F–U+009F).
macro_rules! line_char {
    () => {
        r"[^\u0000-\u001F\u007F-\u009F]"
    };
}
/// Any character but a control character other than tab, line feed and carriage return.
macro_rules! text_char {
    () => {
        r"[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]"
    };
}
/// Any character but a control character other than tab and line feed.
macro_rules! text_char_without_cr {
    () => {
        r"[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]"
    };
}
/// A character that is neither a control character nor whitespace (`char::is_whitespace`), so
/// that the value is not empty once trimmed.
macro_rules! visible_char {
    () => {
        r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    };
}

/// Whitespace (`char::is_whitespace`), which the domain trims from both ends of a name or reason
/// before its other rules; some of it (tab, line breaks, U+0085) is control characters too.
macro_rules! whitespace_char {
    () => {
        r"[\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    };
}

/// Names of people and products: once trimmed, 1–200 characters and no control characters.
/// The length is of the trimmed name, so it is stated in the pattern (a visible character, at
/// most 198 more, a visible last one), not as `maxLength`: surrounding whitespace is allowed
/// and trimmed.
pub const SINGLE_LINE_TEXT: &str = concat!(
    "^",
    whitespace_char!(),
    "*",
    visible_char!(),
    "(",
    line_char!(),
    "{0,198}",
    visible_char!(),
    ")?",
    whitespace_char!(),
    "*$"
);
/// A stock adjustment's reason: once trimmed, 1–500 characters; line breaks and tabs allowed
/// inside, no other control characters.
pub const MULTI_LINE_TEXT: &str = concat!(
    "^",
    whitespace_char!(),
    "*",
    visible_char!(),
    "(",
    text_char!(),
    "{0,498}",
    visible_char!(),
    ")?",
    whitespace_char!(),
    "*$"
);
/// A webhook endpoint's description (`orderly_domain::webhook::parse_description`): once
/// trimmed, at most 500 characters (none at all is no description); tabs and line feeds
/// allowed inside, no other control character (the surrounding whitespace is trimmed first, so
/// a carriage return there is fine).
pub const ENDPOINT_DESCRIPTION_TEXT: &str = concat!(
    "^",
    whitespace_char!(),
    "*(",
    visible_char!(),
    "(",
    text_char_without_cr!(),
    "{0,498}",
    visible_char!(),
    ")?)?",
    whitespace_char!(),
    "*$"
);
/// A stock-keeping unit (`orderly_domain::product::Sku::parse`): 1–64 letters, digits and `-`
/// once the surrounding whitespace is trimmed (lower case is stored upper-cased).
pub const SKU_TEXT: &str = concat!("^", whitespace_char!(), "*[A-Za-z0-9-]{1,64}", whitespace_char!(), "*$");
/// A product description: may be empty; line breaks and tabs allowed, no other control characters.
pub const DESCRIPTION_TEXT: &str = concat!("^", text_char!(), "*$");
/// The catalogue search `q`: no control characters.
pub const SEARCH_TEXT: &str = concat!("^", line_char!(), "*$");
/// A new password: anything but NUL.
pub const PASSWORD_TEXT: &str = r"^[^\u0000]*$";

/// An invoice number (`InvoiceNumber`): a year from 1000 and a sequence from 000001.
pub const INVOICE_NUMBER: &str =
    "^[1-9][0-9]{3}-([1-9][0-9]{5}|0[1-9][0-9]{4}|00[1-9][0-9]{3}|000[1-9][0-9]{2}|0000[1-9][0-9]|00000[1-9])$";

/// (component schema, property, pattern) for request bodies.
const BODY_PATTERNS: [(&str, &str, &str); 12] = [
    ("CreateProductRequest", "sku", SKU_TEXT),
    ("CreateProductRequest", "name", SINGLE_LINE_TEXT),
    ("UpdateProductRequest", "name", SINGLE_LINE_TEXT),
    ("RegisterUserRequest", "name", SINGLE_LINE_TEXT),
    ("UpdateUserRequest", "name", SINGLE_LINE_TEXT),
    ("CreateProductRequest", "description", DESCRIPTION_TEXT),
    ("UpdateProductRequest", "description", DESCRIPTION_TEXT),
    ("AdjustStockRequest", "reason", MULTI_LINE_TEXT),
    ("RegisterUserRequest", "password", PASSWORD_TEXT),
    ("UpdateUserRequest", "password", PASSWORD_TEXT),
    ("CreateWebhookEndpointRequest", "description", ENDPOINT_DESCRIPTION_TEXT),
    ("UpdateWebhookEndpointRequest", "description", ENDPOINT_DESCRIPTION_TEXT),
];
/// (component schema, array property) whose items must be distinct: the event types of a
/// webhook endpoint (`orderly_domain::webhook::EventTypeFilter::parse` refuses a repeat).
const UNIQUE_ITEMS: [(&str, &str); 2] =
    [("CreateWebhookEndpointRequest", "event_types"), ("UpdateWebhookEndpointRequest", "event_types")];
/// The patterns that bound the length of the trimmed text: the fields they are written on
/// have no `maxLength`, which would count the whitespace the domain trims, and refuse names
/// the service takes.
const TRIMMED_LENGTH_PATTERNS: [&str; 3] = [SINGLE_LINE_TEXT, MULTI_LINE_TEXT, ENDPOINT_DESCRIPTION_TEXT];
/// (operationId, query parameter, pattern).
const QUERY_PATTERNS: [(&str, &str, &str); 1] = [("listProducts", "q", SEARCH_TEXT)];
/// Largest stock adjustment either way (`AdjustStockRequest.delta`).
const MAX_DELTA: i64 = 1_000_000_000;

/// Writes the patterns into `api`; states that a stock adjustment's `delta` is never zero and
/// that `current_password` comes only with a new `password`.
pub fn describe(api: &mut OpenApi) {
    for (operation, name, pattern) in QUERY_PATTERNS {
        let gets = api.paths.paths.values_mut().filter_map(|item| item.get.as_mut());
        for get in gets.filter(|get| get.operation_id.as_deref() == Some(operation)) {
            for parameter in get.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter
                    && parameter.parameter_in == ParameterIn::Query
                    && parameter.name == name
                    && let Some(RefOr::T(Schema::Object(schema))) = &mut parameter.schema
                {
                    schema.pattern = Some(pattern.to_owned());
                }
            }
        }
    }
    let Some(components) = &mut api.components else { return };
    if let Some(RefOr::T(Schema::Object(update_user))) = components.schemas.get_mut("UpdateUserRequest") {
        // utoipa models no `dependentRequired` (JSON Schema 2020-12 §6.5.4), but writes its
        // extensions map flat into the schema object, so the keyword goes through it.
        update_user
            .extensions
            .get_or_insert_with(Default::default)
            .insert("dependentRequired".to_owned(), serde_json::json!({"current_password": ["password"]}));
    }
    for (schema, property, pattern) in BODY_PATTERNS {
        if let Some(RefOr::T(Schema::Object(field))) = property_of(components, schema, property) {
            field.pattern = Some(pattern.to_owned());
            if TRIMMED_LENGTH_PATTERNS.contains(&pattern) {
                field.max_length = None;
            }
        }
    }
    for (schema, property) in UNIQUE_ITEMS {
        if let Some(RefOr::T(Schema::Array(items))) = property_of(components, schema, property) {
            items.unique_items = true;
        }
    }
    if let Some(delta) = property_of(components, "AdjustStockRequest", "delta")
        && let RefOr::T(Schema::Object(integer)) = delta
    {
        let side = |minimum: i64, maximum: i64| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(integer.format.clone())
                .minimum(Some(minimum))
                .maximum(Some(maximum))
        };
        let one_of = OneOfBuilder::new()
            .item(side(-MAX_DELTA, -1))
            .item(side(1, MAX_DELTA))
            .description(integer.description.clone())
            .build();
        *delta = RefOr::T(Schema::OneOf(one_of));
    }
}

/// The property `property` of the component schema `schema`.
pub(crate) fn property_of<'a>(
    components: &'a mut Components,
    schema: &str,
    property: &str,
) -> Option<&'a mut RefOr<Schema>> {
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else { return None };
    object.properties.get_mut(property)
}

#[cfg(test)]
mod tests {
    use orderly_domain::product::{AdjustmentReason, Description, ProductName};
    use orderly_domain::user::{Password, UserName};
    use orderly_domain::webhook::parse_description;
    use proptest::prelude::*;

    use super::*;

    /// Short strings (so no length rule decides) of the characters the rules are about:
    /// controls, tab and line breaks, ASCII and Unicode whitespace, and ordinary characters.
    fn text() -> impl Strategy<Value = String> {
        let pieces = vec![
            "\0", "\u{1}", "\u{1f}", "\u{7f}", "\u{85}", "\u{9f}", "\t", "\n", "\r", "\u{b}", " ", "\u{a0}",
            "\u{2003}", "\u{3000}", "\u{feff}", "a", "Z", "é", "€", "-", "😀", "\u{a1}",
        ];
        prop::collection::vec(prop::sample::select(pieces), 0..6).prop_map(|pieces| pieces.concat())
    }

    /// Whether `pattern` matches `text`; each pattern is compiled once (they are large).
    fn matches(pattern: &'static str, text: &str) -> bool {
        static COMPILED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<&'static str, regex::Regex>>> =
            std::sync::LazyLock::new(Default::default);
        let regex = COMPILED
            .lock()
            .unwrap()
            .entry(pattern)
            .or_insert_with(|| regex::RegexBuilder::new(pattern).size_limit(1 << 26).build().unwrap())
            .clone();
        regex.is_match(text)
    }

    #[test]
    fn lengths_are_of_the_trimmed_text() {
        let padded = |core: &str| format!(" \t\u{3000}{core}\n \u{85}");
        for (limit, pattern, domain) in [
            (200, SINGLE_LINE_TEXT, (|text: &str| ProductName::parse(text).is_ok()) as fn(&str) -> bool),
            (200, SINGLE_LINE_TEXT, |text: &str| UserName::parse(text).is_ok()),
            (500, MULTI_LINE_TEXT, |text: &str| AdjustmentReason::parse(text).is_ok()),
            (500, ENDPOINT_DESCRIPTION_TEXT, |text: &str| parse_description(text).is_ok()),
        ] {
            for length in [1, 2, limit - 1, limit, limit + 1] {
                let core: String = (0..length).map(|i| if i % 7 == 3 && i + 1 != length { ' ' } else { 'é' }).collect();
                let text = padded(&core);
                assert_eq!(matches(pattern, &text), length <= limit, "length {length}");
                assert_eq!(domain(&text), length <= limit, "length {length}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn names_match_the_single_line_rule(text in text()) {
            prop_assert_eq!(matches(SINGLE_LINE_TEXT, &text), ProductName::parse(&text).is_ok());
            prop_assert_eq!(matches(SINGLE_LINE_TEXT, &text), UserName::parse(&text).is_ok());
        }

        #[test]
        fn skus_match_their_rule(text in prop::collection::vec(prop::sample::select(vec![" ", "\t", "\u{3000}", "a", "Z", "0", "-", "_", "é"]), 0..8).prop_map(|pieces| pieces.concat())) {
            prop_assert_eq!(matches(SKU_TEXT, &text), orderly_domain::product::Sku::parse(&text).is_ok());
        }

        #[test]
        fn reasons_match_the_multi_line_rule(text in text()) {
            prop_assert_eq!(matches(MULTI_LINE_TEXT, &text), AdjustmentReason::parse(&text).is_ok());
        }

        #[test]
        fn descriptions_match_their_rule(text in text()) {
            prop_assert_eq!(matches(DESCRIPTION_TEXT, &text), Description::parse(&text).is_ok());
        }

        #[test]
        fn webhook_descriptions_match_their_rule(text in text()) {
            prop_assert_eq!(matches(ENDPOINT_DESCRIPTION_TEXT, &text), parse_description(&text).is_ok());
        }

        #[test]
        fn passwords_refuse_only_nul(text in text()) {
            // Padded to the minimum length, so only the characters decide.
            let password = format!("{text}long-enough-pw");
            prop_assert_eq!(matches(PASSWORD_TEXT, &password), Password::parse(&password).is_ok());
        }

        #[test]
        fn search_refuses_control_characters(text in text()) {
            prop_assume!(!text.is_empty());
            prop_assert_eq!(matches(SEARCH_TEXT, &text), !text.chars().any(char::is_control));
        }
    }

    fn invoice_like() -> impl Strategy<Value = String> {
        prop_oneof!["[0-9]{4}-[0-9]{6}", "[01]{4}-0{5}[0-9]", "[0-9]{3,5}-[0-9]{5,7}", "[0-9a-]{0,12}",]
    }

    proptest! {
        #[test]
        fn invoice_numbers_match_their_rule(text in invoice_like()) {
            let parsed = orderly_domain::invoice::InvoiceNumber::parse(&text).is_ok();
            prop_assert_eq!(matches(INVOICE_NUMBER, &text), parsed);
        }
    }

    #[test]
    fn the_document_carries_the_patterns() {
        let document = serde_json::to_value(crate::openapi()).unwrap();
        let schemas = &document["components"]["schemas"];
        for (schema, property, pattern) in BODY_PATTERNS {
            let field = &schemas[schema]["properties"][property];
            assert_eq!(field["pattern"], pattern, "{schema}.{property}");
            if TRIMMED_LENGTH_PATTERNS.contains(&pattern) {
                assert!(field.get("maxLength").is_none(), "{schema}.{property} counts untrimmed whitespace");
            }
        }
        for (schema, property) in UNIQUE_ITEMS {
            assert_eq!(schemas[schema]["properties"][property]["uniqueItems"], true, "{schema}.{property}");
        }
        assert_eq!(schemas["UpdateUserRequest"]["properties"]["password"]["pattern"], PASSWORD_TEXT);
        let delta = &schemas["AdjustStockRequest"]["properties"]["delta"]["oneOf"];
        assert_eq!(delta[0]["maximum"], -1);
        assert_eq!(delta[1]["minimum"], 1);
        let q = document["paths"]["/v1/products"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == "q")
            .unwrap();
        assert_eq!(q["schema"]["pattern"], SEARCH_TEXT);
        assert_eq!(schemas["Order"]["properties"]["invoice_number"]["pattern"], INVOICE_NUMBER);
        assert_eq!(schemas["Invoice"]["properties"]["number"]["pattern"], INVOICE_NUMBER);
        let number = &document["paths"]["/v1/invoices/{number}"]["get"]["parameters"][0];
        assert_eq!(number["schema"]["pattern"], INVOICE_NUMBER);
        assert_eq!(
            schemas["UpdateUserRequest"]["dependentRequired"],
            serde_json::json!({"current_password": ["password"]})
        );
    }
}
