//! Every failure, one shape: RFC 9457 problem details (docs/api.md#errors).
//!
//! Owns the closed list of problem codes, [`ApiError`] (what a handler, extractor or the
//! fallback returns when something fails), the **one** mapping from each domain error enum to
//! an `ApiError`, and the rendering of an `ApiError` into an `application/problem+json`
//! response.
//!
//! Rendering needs two facts only the request knows — its path (`instance`) and its request id —
//! so `ResponseError::error_response` renders a context-free draft and attaches the error to
//! the response; [`crate::middleware::problem_responses`] re-renders it with the request's
//! context, sets `Cache-Control: no-store`, and logs server faults with their cause chain.
//! Nothing internal (cause text, type names, SQL) is ever put in a body: causes are kept in
//! `ApiError::cause` for the log only.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use orderly_domain::StoreError;
use orderly_domain::ports::{EventRejected, NotReady, TokenRejected};
use orderly_domain::services::{
    AdjustStockError, ApplyEventError, ChangeOrderError, ChangeProductError, CreateProductError, GetInvoiceError,
    GetOrderError, GetPaymentError, GetProductError, GetUserError, ListAdjustmentsError, ListUsersError, LoginError,
    PayError, PlaceOrderError, ReadFeedError, RefreshError, RegisterError, UpdateUserError, WebhookError,
};
use orderly_domain::validation::{FieldViolation, InvalidValue};

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: u32 = 5;
/// Seconds a client should wait before retrying a request whose key is still in progress.
const IDEMPOTENCY_RETRY_AFTER_SECONDS: u32 = 1;

// What a problem body may echo is bounded, so that its size does not grow with the request
// (docs/api.md#the-size-of-a-problem): at most `MAX_ERRORS` entries, each text cut to a few hundred bytes. Whatever the
// request, a problem body stays below 64 KiB (`problem_bodies_are_bounded_whatever_the_input`).
/// At most this many `errors` entries are listed; `errors_truncated` says when there were more.
pub const MAX_ERRORS: usize = 100;
/// An entry's `pointer`, `parameter` and `message` take at most this many bytes each, as
/// written in the body (escapes included).
pub const MAX_ENTRY_TEXT_BYTES: usize = 200;
/// An entry's `code` takes at most this many bytes (ours are short identifiers; the cap is for
/// codes passed on from elsewhere, e.g. a payment provider's decline code).
pub const MAX_ENTRY_CODE_BYTES: usize = 64;
/// `detail` and `instance` take at most this many bytes each, as written in the body.
pub const MAX_DETAIL_BYTES: usize = 1000;
/// What ends a text that was cut to fit its bound.
const CUT_MARK: &str = "…";

/// Declares [`ProblemCode`] from its table: one row per code gives the variant, the wire
/// `code`, the status, the title, the `type` slug and whether it is the code of a bare status
/// (see [`ProblemCode::for_status`]). Every fact about a code is read from its row, so adding a
/// code is adding a row.
// `$code` is a `tt`, not a `literal`: utoipa reads `#[serde(rename = ...)]` only from a bare
// literal token, and a `literal` fragment reaches it wrapped in an invisible group.
macro_rules! problem_codes {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident => $code:tt, $status:ident, $title:literal, $slug:literal, $bare:literal;
    )*) => {
        /// The closed list of problem codes. Clients switch on these; each has exactly one
        /// status, title and `type` URI.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
        pub enum ProblemCode {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $code)]
                $variant,
            )*
        }

        impl ProblemCode {
            /// Every code, in the order of the contract's table.
            pub const ALL: [ProblemCode; [$($code),*].len()] = [$(Self::$variant),*];

            /// The stable machine-readable key, as it appears in `code`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)*
                }
            }

            /// A short, human-readable summary that does not change between occurrences
            /// (RFC 9457 §3.1.4).
            pub fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => $title,)*
                }
            }

            /// The last segment of the `type` URI.
            fn type_slug(self) -> &'static str {
                match self {
                    $(Self::$variant => $slug,)*
                }
            }

            /// Whether this is the code of a bare response with its status.
            fn is_bare_status_code(self) -> bool {
                match self {
                    $(Self::$variant => $bare,)*
                }
            }
        }
    };
}

problem_codes! {
    // variant                    code                             status                            title                            type slug                        bare
    MalformedJson              => "malformed_json",                BAD_REQUEST,                      "Malformed JSON",                "malformed-json",                false;
    InvalidParameter           => "invalid_parameter",             BAD_REQUEST,                      "Invalid parameter",             "invalid-parameter",             true;
    Unauthenticated            => "unauthenticated",               UNAUTHORIZED,                     "Unauthenticated",               "unauthenticated",               true;
    InvalidCredentials         => "invalid_credentials",           UNAUTHORIZED,                     "Invalid credentials",           "invalid-credentials",           false;
    Forbidden                  => "forbidden",                     FORBIDDEN,                        "Forbidden",                     "forbidden",                     true;
    NotFound                   => "not_found",                     NOT_FOUND,                        "Not found",                     "not-found",                     true;
    MethodNotAllowed           => "method_not_allowed",            METHOD_NOT_ALLOWED,               "Method not allowed",            "method-not-allowed",            true;
    EmailTaken                 => "email_taken",                   CONFLICT,                         "Email taken",                   "email-taken",                   false;
    SkuTaken                   => "sku_taken",                     CONFLICT,                         "SKU taken",                     "sku-taken",                     false;
    InsufficientStock          => "insufficient_stock",            CONFLICT,                         "Insufficient stock",            "insufficient-stock",            false;
    InvalidTransition          => "invalid_transition",            CONFLICT,                         "Invalid transition",            "invalid-transition",            false;
    StockBelowReserved         => "stock_below_reserved",          CONFLICT,                         "Stock below reserved",          "stock-below-reserved",          false;
    IdempotencyInProgress      => "idempotency_in_progress",       CONFLICT,                         "Idempotency key in progress",   "idempotency-in-progress",       false;
    PreconditionFailed         => "precondition_failed",           PRECONDITION_FAILED,              "Precondition failed",           "precondition-failed",           true;
    /// Refused before routing (ADR 0016).
    RequestTimeout             => "request_timeout",               REQUEST_TIMEOUT,                  "Request timeout",               "request-timeout",               true;
    PayloadTooLarge            => "payload_too_large",             PAYLOAD_TOO_LARGE,                "Payload too large",             "payload-too-large",             true;
    /// Refused before routing (ADR 0016).
    UriTooLong                 => "uri_too_long",                  URI_TOO_LONG,                     "URI too long",                  "uri-too-long",                  true;
    UnsupportedMediaType       => "unsupported_media_type",        UNSUPPORTED_MEDIA_TYPE,           "Unsupported media type",        "unsupported-media-type",        true;
    /// Refused before routing (ADR 0016).
    HeaderFieldsTooLarge       => "header_fields_too_large",       REQUEST_HEADER_FIELDS_TOO_LARGE,  "Header fields too large",       "header-fields-too-large",       true;
    ValidationFailed           => "validation_failed",             UNPROCESSABLE_ENTITY,             "Validation failed",             "validation-failed",             true;
    IdempotencyKeyReused       => "idempotency_key_reused",        UNPROCESSABLE_ENTITY,             "Idempotency key reused",        "idempotency-key-reused",        false;
    PreconditionRequired       => "precondition_required",         PRECONDITION_REQUIRED,            "Precondition required",         "precondition-required",         true;
    RateLimited                => "rate_limited",                  TOO_MANY_REQUESTS,                "Rate limited",                  "rate-limited",                  true;
    InternalError              => "internal_error",                INTERNAL_SERVER_ERROR,            "Internal error",                "internal-error",                true;
    ServiceUnavailable         => "service_unavailable",           SERVICE_UNAVAILABLE,              "Service unavailable",           "service-unavailable",           true;
    InvalidSignature           => "invalid_signature",             BAD_REQUEST,                      "Invalid signature",             "invalid-signature",             false;
    PaymentDeclined            => "payment_declined",              PAYMENT_REQUIRED,                 "Payment declined",              "payment-declined",              false;
    PaymentInProgress          => "payment_in_progress",           CONFLICT,                         "Payment in progress",           "payment-in-progress",           false;
    PaymentsDisabled           => "payments_disabled",             CONFLICT,                         "Payments disabled",             "payments-disabled",             false;
    ReservationLimitExceeded   => "reservation_limit_exceeded",    CONFLICT,                         "Reservation limit exceeded",    "reservation-limit-exceeded",    false;
    PaymentProviderError       => "payment_provider_error",        BAD_GATEWAY,                      "Payment provider error",        "payment-provider-error",        false;
    PaymentProviderUnavailable => "payment_provider_unavailable",  SERVICE_UNAVAILABLE,              "Payment provider unavailable",  "payment-provider-unavailable",  false;
}

impl ProblemCode {
    /// The `type` URI: the configured base plus the code's slug, unique per code.
    pub fn type_uri(self, base: &str) -> String {
        format!("{base}{}", self.type_slug())
    }

    /// The code a bare status maps to, for failures the framework produced without an
    /// `ApiError` (e.g. an embedded service answering 404): the row marked `bare` with that
    /// status, or `internal_error` for any other server error. `None` for statuses no code has.
    pub fn for_status(status: StatusCode) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|code| code.is_bare_status_code() && code.status() == status)
            .or_else(|| status.is_server_error().then_some(Self::InternalError))
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One faulty input: a body field (`pointer`, RFC 6901) or a query/path parameter
/// (`parameter`). Exactly one of the two is present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"pointer": "/password", "code": "too_short", "message": "must be at least 12 characters"}))]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) into the request body; `""` is the whole body. At most 200
    /// bytes: a longer one (e.g. an unknown field with a very long name) is cut and ends with `…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 200)]
    pub pointer: Option<String>,
    /// Name of the query or path parameter at fault. At most 200 bytes, like `pointer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 200)]
    pub parameter: Option<String>,
    /// Stable machine-readable reason, e.g. `required`, `too_short`, `unknown_field`,
    /// `duplicate_member`.
    #[schema(max_length = 64)]
    pub code: String,
    /// Human-readable explanation. Never echoes the submitted value. At most 200 bytes.
    #[schema(max_length = 200)]
    pub message: String,
}

impl FieldError {
    /// A fault in the body at `pointer` (already an RFC 6901 pointer).
    pub fn at_pointer(pointer: impl Into<String>, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { pointer: Some(pointer.into()), parameter: None, code: code.into(), message: message.into() }
    }

    /// A fault in the query or path parameter `name`.
    pub fn parameter(name: impl Into<String>, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { pointer: None, parameter: Some(name.into()), code: code.into(), message: message.into() }
    }

    /// A domain violation in a request body: its path becomes a JSON Pointer.
    pub fn from_body_violation(violation: FieldViolation) -> Self {
        Self::at_pointer(json_pointer(&violation.path), violation.code, violation.message)
    }

    /// A value the domain refused, read from the query or path parameter `name`.
    pub fn invalid_parameter(name: impl Into<String>, fault: InvalidValue) -> Self {
        Self::parameter(name, fault.code, fault.message)
    }

    /// This entry as a problem body shows it: each text cut to its bound.
    fn bounded(&self) -> Self {
        let text = |text: &str| bounded(text, MAX_ENTRY_TEXT_BYTES);
        Self {
            pointer: self.pointer.as_deref().map(text),
            parameter: self.parameter.as_deref().map(text),
            code: bounded(&self.code, MAX_ENTRY_CODE_BYTES),
            message: text(&self.message),
        }
    }
}

/// `text`, cut on a character boundary so that it takes at most `max_bytes` once written as a
/// JSON string (without its quotes) and ending with [`CUT_MARK`] when it was cut. Counting the
/// escapes matters: a name made of control characters is six bytes per character in the body.
fn bounded(text: &str, max_bytes: usize) -> String {
    // As serde_json writes a string: `"`, `\` and the C0 controls escaped, nothing else.
    fn written_len(c: char) -> usize {
        match c {
            '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
            c if u32::from(c) < 0x20 => 6,
            c => c.len_utf8(),
        }
    }
    if text.chars().map(written_len).sum::<usize>() <= max_bytes {
        return text.to_owned();
    }
    let budget = max_bytes.saturating_sub(CUT_MARK.len());
    let mut written = 0;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        written += written_len(c);
        if written > budget {
            break;
        }
        end = index + c.len_utf8();
    }
    format!("{}{CUT_MARK}", &text[..end])
}

/// `count` followed by `one` when it is 1, by `many` otherwise: `counted(3, "field is", "fields
/// are")` is "3 fields are".
fn counted<N: fmt::Display + PartialEq + From<u8>>(count: N, one: &str, many: &str) -> String {
    format!("{count} {}", if count == N::from(1) { one } else { many })
}

/// Builds an RFC 6901 JSON Pointer from path segments, escaping `~` and `/`.
pub fn json_pointer<S: AsRef<str>>(segments: &[S]) -> String {
    segments.iter().fold(String::new(), |mut pointer, segment| {
        pointer.push('/');
        pointer.push_str(&segment.as_ref().replace('~', "~0").replace('/', "~1"));
        pointer
    })
}

/// The body of every error response (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://orderly.example/problems/validation-failed",
    "title": "Validation failed",
    "status": 422,
    "detail": "2 fields are invalid",
    "instance": "/v1/users",
    "code": "validation_failed",
    "request_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f",
    "errors": [
        {"pointer": "/password", "code": "too_short", "message": "must be at least 12 characters"},
        {"pointer": "/role", "code": "unknown_field", "message": "is not a field of this request"}
    ]
}))]
pub struct ProblemDetails {
    /// URI identifying the problem type; unique per `code`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    /// The HTTP status code, repeated for convenience.
    pub status: u16,
    /// Explanation specific to this occurrence. At most 1000 bytes.
    #[schema(max_length = 1000)]
    pub detail: String,
    /// The request path this problem occurred on. At most 1000 bytes: a longer path is cut and
    /// ends with `…`.
    #[schema(max_length = 1000)]
    pub instance: String,
    pub code: ProblemCode,
    /// The request's id, as echoed in `X-Request-Id`; quote it when reporting a problem.
    pub request_id: String,
    /// Present when individual fields or parameters are at fault; lists every fault, up to 100
    /// (`errors_truncated` says when there were more).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 100)]
    pub errors: Vec<FieldError>,
    /// `true` when there were more faults than the 100 that `errors` lists (`detail` says how
    /// many); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub errors_truncated: bool,
}

/// Which `WWW-Authenticate` challenge a 401 carries (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerChallenge {
    /// No credentials were sent.
    Missing,
    /// A token was sent and refused.
    InvalidToken,
}

impl BearerChallenge {
    fn header_value(self) -> &'static str {
        match self {
            Self::Missing => "Bearer",
            Self::InvalidToken => "Bearer error=\"invalid_token\"",
        }
    }
}

/// A failure on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    code: ProblemCode,
    detail: String,
    errors: Vec<FieldError>,
    challenge: Option<BearerChallenge>,
    allow: Option<String>,
    retry_after: Option<u32>,
    /// What really happened, for the log only; never rendered.
    cause: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            challenge: None,
            allow: None,
            retry_after: None,
            cause: None,
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn with_cause(mut self, cause: anyhow::Error) -> Self {
        self.cause = Some(cause);
        self
    }

    /// Adds `Retry-After: seconds`.
    fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::NotFound, detail)
    }

    /// 404 "no such `resource`": the domain found none the caller may see.
    fn no_such(resource: &str) -> Self {
        Self::not_found(format!("no such {resource}"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::Forbidden, detail)
    }

    /// 412: the `resource` changed since the version the client names in `If-Match`.
    fn precondition_failed(resource: &str) -> Self {
        Self::new(
            ProblemCode::PreconditionFailed,
            format!("the {resource} has changed since the ETag in If-Match was read; fetch it again"),
        )
    }

    /// 405 with the `Allow` header listing `allowed` (already in canonical order).
    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        let allow = allowed.join(", ");
        let mut error = Self::new(ProblemCode::MethodNotAllowed, format!("{method} is not allowed here; use {allow}"));
        error.allow = Some(allow);
        error
    }

    pub fn unauthenticated(challenge: BearerChallenge) -> Self {
        let detail = match challenge {
            BearerChallenge::Missing => "this operation needs a bearer access token",
            BearerChallenge::InvalidToken => "the access token is malformed, expired or not valid for this service",
        };
        let mut error = Self::new(ProblemCode::Unauthenticated, detail);
        error.challenge = Some(challenge);
        error
    }

    /// 422 listing every faulty body field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = format!("{} invalid", counted(errors.len(), "field is", "fields are"));
        Self::new(ProblemCode::ValidationFailed, detail).with_errors(errors)
    }

    /// 422 listing the fields of the body that the domain refused.
    fn invalid_body(violations: Vec<FieldViolation>) -> Self {
        Self::validation(violations.into_iter().map(FieldError::from_body_violation).collect())
    }

    /// 400 listing every faulty query or path parameter.
    pub fn invalid_parameters(errors: Vec<FieldError>) -> Self {
        let detail = format!("{} invalid", counted(errors.len(), "parameter is", "parameters are"));
        Self::new(ProblemCode::InvalidParameter, detail).with_errors(errors)
    }

    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::MalformedJson, detail)
    }

    /// 503 with `Retry-After`: the store could not be reached.
    pub fn unavailable(cause: anyhow::Error) -> Self {
        Self::new(ProblemCode::ServiceUnavailable, "the service is temporarily unavailable; retry later")
            .with_cause(cause)
            .with_retry_after(RETRY_AFTER_SECONDS)
    }

    /// 429 `rate_limited` with `Retry-After`: a rate-limit bucket of the caller is empty and
    /// the next token arrives in `retry_after_seconds` (docs/api.md#rate-limiting, `crate::rate_limit`).
    pub fn rate_limited(retry_after_seconds: u32) -> Self {
        Self::new(
            ProblemCode::RateLimited,
            "too many requests; retry after Retry-After seconds (the RateLimit header says what is left)",
        )
        .with_retry_after(retry_after_seconds)
    }

    /// 409 `idempotency_in_progress` with `Retry-After`: the first request with this
    /// `Idempotency-Key` is still executing (docs/api.md#retries-idempotency-key).
    pub fn idempotency_in_progress() -> Self {
        Self::new(
            ProblemCode::IdempotencyInProgress,
            "a request with this Idempotency-Key is still being processed; retry after Retry-After seconds",
        )
        .with_retry_after(IDEMPOTENCY_RETRY_AFTER_SECONDS)
    }

    /// 422 `idempotency_key_reused`: the `Idempotency-Key` was first sent with another request
    /// (another method, path or body) (docs/api.md#retries-idempotency-key).
    pub fn idempotency_key_reused() -> Self {
        Self::new(
            ProblemCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used with a different request; use a new key for a new request",
        )
    }

    /// A bare 500; `cause` is logged, never shown.
    pub fn internal(cause: anyhow::Error) -> Self {
        Self::new(ProblemCode::InternalError, "an unexpected error occurred; it has been logged").with_cause(cause)
    }

    pub fn code(&self) -> ProblemCode {
        self.code
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub fn cause(&self) -> Option<&anyhow::Error> {
        self.cause.as_ref()
    }

    /// The problem body for this error on the request at `instance` with id `request_id`:
    /// every text bounded and at most [`MAX_ERRORS`] entries, whoever produced the error.
    pub fn problem(&self, type_base: &str, instance: &str, request_id: &str) -> ProblemDetails {
        ProblemDetails {
            problem_type: self.code.type_uri(type_base),
            title: self.code.title().to_owned(),
            status: self.code.status().as_u16(),
            detail: bounded(&self.detail, MAX_DETAIL_BYTES),
            instance: bounded(instance, MAX_DETAIL_BYTES),
            code: self.code,
            request_id: request_id.to_owned(),
            errors: self.errors.iter().take(MAX_ERRORS).map(FieldError::bounded).collect(),
            errors_truncated: self.errors.len() > MAX_ERRORS,
        }
    }

    /// The full response: status, problem body and the headers this error calls for.
    pub fn render(&self, problem: &ProblemDetails) -> HttpResponse {
        let mut response = HttpResponse::build(self.code.status());
        response.content_type(PROBLEM_JSON).insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(challenge) = self.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, challenge.header_value()));
        }
        if let Some(value) = self.allow.as_deref().and_then(|allow| HeaderValue::from_str(allow).ok()) {
            response.insert_header((header::ALLOW, value));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        match serde_json::to_vec(problem) {
            Ok(body) => response.body(body),
            // Serialising plain strings and numbers cannot fail; answer bare rather than panic.
            Err(_) => response.finish(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|cause| cause.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    /// A draft without request context; `middleware::problem_responses` replaces it.
    fn error_response(&self) -> HttpResponse {
        self.render(&self.problem(crate::DEFAULT_PROBLEM_TYPE_BASE, "", ""))
    }
}

// ---------------------------------------------------------------------------------------------
// The one mapping from each domain error enum to an ApiError. A verdict several enums share is
// one constructor above (`no_such`, `forbidden`, `precondition_failed`, `invalid_body`), so
// each of its texts is written once.
// ---------------------------------------------------------------------------------------------

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => Self::unavailable(cause.context("the database is unavailable")),
            StoreError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        // The blocking pool is gone or the work panicked: nothing a client can act on.
        Self::internal(anyhow::anyhow!("blocking task failed: {error}"))
    }
}

impl From<RegisterError> for ApiError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::EmailTaken => Self::new(ProblemCode::EmailTaken, "this email address is already registered")
                .with_errors(vec![FieldError::at_pointer("/email", "taken", "is already registered")]),
            RegisterError::Store(store) => store.into(),
            RegisterError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<GetUserError> for ApiError {
    fn from(error: GetUserError) -> Self {
        match error {
            GetUserError::NotFound => Self::no_such("user"),
            GetUserError::Store(store) => store.into(),
        }
    }
}

impl From<ListUsersError> for ApiError {
    fn from(error: ListUsersError) -> Self {
        match error {
            ListUsersError::Forbidden => Self::forbidden("only admins may list users"),
            ListUsersError::Store(store) => store.into(),
        }
    }
}

impl From<UpdateUserError> for ApiError {
    fn from(error: UpdateUserError) -> Self {
        match error {
            UpdateUserError::NotFound => Self::no_such("user"),
            UpdateUserError::Forbidden(fields) => {
                let errors = fields
                    .iter()
                    .map(|field| {
                        FieldError::at_pointer(
                            json_pointer(&[field]),
                            "forbidden",
                            "your role may not change this field",
                        )
                    })
                    .collect();
                Self::forbidden(format!("your role may not change: {}", fields.join(", "))).with_errors(errors)
            }
            UpdateUserError::Invalid(violations) => Self::invalid_body(violations),
            UpdateUserError::VersionMismatch => Self::precondition_failed("user"),
            UpdateUserError::Store(store) => store.into(),
            UpdateUserError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            // One body for unknown email, wrong password and deactivated account.
            LoginError::InvalidCredentials => Self::new(ProblemCode::InvalidCredentials, "invalid email or password"),
            LoginError::Store(store) => store.into(),
            LoginError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(error: RefreshError) -> Self {
        let invalid = || {
            Self::unauthenticated(BearerChallenge::InvalidToken)
                .with_detail("the refresh token is not valid; log in again")
        };
        match error {
            RefreshError::InvalidToken => invalid(),
            RefreshError::ReuseDetected { family_id } => {
                // A security event operators must see; the client learns only "invalid".
                tracing::warn!(%family_id, "spent refresh token presented again; its family was revoked");
                invalid()
            }
            RefreshError::Store(store) => store.into(),
            RefreshError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<CreateProductError> for ApiError {
    fn from(error: CreateProductError) -> Self {
        match error {
            CreateProductError::Forbidden => Self::forbidden("only admins may create products"),
            CreateProductError::SkuTaken => Self::new(ProblemCode::SkuTaken, "this SKU is already in use")
                .with_errors(vec![FieldError::at_pointer("/sku", "taken", "is already in use")]),
            CreateProductError::Invalid(violations) => Self::invalid_body(violations),
            CreateProductError::Store(store) => store.into(),
        }
    }
}

impl From<GetProductError> for ApiError {
    fn from(error: GetProductError) -> Self {
        match error {
            GetProductError::NotFound => Self::no_such("product"),
            GetProductError::Store(store) => store.into(),
        }
    }
}

impl From<ChangeProductError> for ApiError {
    fn from(error: ChangeProductError) -> Self {
        match error {
            ChangeProductError::Forbidden => Self::forbidden("only admins may change products"),
            ChangeProductError::NotFound => Self::no_such("product"),
            ChangeProductError::VersionMismatch => Self::precondition_failed("product"),
            ChangeProductError::Store(store) => store.into(),
        }
    }
}

impl From<AdjustStockError> for ApiError {
    fn from(error: AdjustStockError) -> Self {
        match error {
            AdjustStockError::Forbidden => Self::forbidden("only admins may adjust stock"),
            AdjustStockError::NotFound => Self::no_such("product"),
            AdjustStockError::BelowReserved { on_hand, reserved, delta } => {
                let smallest = reserved.saturating_sub(on_hand);
                Self::new(
                    ProblemCode::StockBelowReserved,
                    format!("a delta of {delta} would leave fewer units on hand than are reserved for pending orders"),
                )
                .with_errors(vec![FieldError::at_pointer(
                    "/delta",
                    "stock_below_reserved",
                    format!("on_hand is {on_hand} and {reserved} are reserved, so delta must be at least {smallest}"),
                )])
            }
            AdjustStockError::Invalid(violations) => Self::invalid_body(violations),
            AdjustStockError::Store(store) => store.into(),
        }
    }
}

impl From<ListAdjustmentsError> for ApiError {
    fn from(error: ListAdjustmentsError) -> Self {
        match error {
            ListAdjustmentsError::Forbidden => Self::forbidden("only admins may read the stock audit trail"),
            ListAdjustmentsError::NotFound => Self::no_such("product"),
            ListAdjustmentsError::Store(store) => store.into(),
        }
    }
}

impl From<PlaceOrderError> for ApiError {
    fn from(error: PlaceOrderError) -> Self {
        match error {
            PlaceOrderError::InsufficientStock(mut shortfalls) => {
                shortfalls.sort_by_key(|shortfall| shortfall.line);
                let detail = format!("{} cannot be reserved", counted(shortfalls.len(), "item", "items"));
                let errors = shortfalls
                    .iter()
                    .map(|shortfall| {
                        FieldError::at_pointer(
                            json_pointer(&["items", &shortfall.line.to_string(), "quantity"]),
                            "insufficient_stock",
                            format!("only {} available", shortfall.available),
                        )
                    })
                    .collect();
                Self::new(ProblemCode::InsufficientStock, detail).with_errors(errors)
            }
            PlaceOrderError::ReservationLimitExceeded(exceeded) => {
                let remaining = exceeded.remaining();
                let detail = format!(
                    "this order asks for {}, and your pending orders hold {} of the {} units one customer \
                     may reserve at once; cancel a pending order or order fewer units",
                    counted(exceeded.requested, "unit", "units"),
                    exceeded.held,
                    exceeded.cap,
                );
                let message = format!("at most {} can be reserved", counted(remaining, "more unit", "more units"));
                Self::new(ProblemCode::ReservationLimitExceeded, detail).with_errors(vec![FieldError::at_pointer(
                    json_pointer(&["items"]),
                    "reservation_limit_exceeded",
                    message,
                )])
            }
            PlaceOrderError::UnavailableProducts(mut lines) => {
                lines.sort_unstable();
                let detail = format!(
                    "{} that cannot be ordered",
                    counted(lines.len(), "item names a product", "items name products")
                );
                let errors = lines
                    .iter()
                    .map(|line| {
                        FieldError::at_pointer(
                            json_pointer(&["items", &line.to_string(), "product_id"]),
                            "unavailable_product",
                            "is not a product of the catalogue, or is archived",
                        )
                    })
                    .collect();
                Self::validation(errors).with_detail(detail)
            }
            PlaceOrderError::Store(store) => store.into(),
        }
    }
}

impl From<GetOrderError> for ApiError {
    fn from(error: GetOrderError) -> Self {
        match error {
            GetOrderError::NotFound => Self::no_such("order"),
            GetOrderError::Store(store) => store.into(),
        }
    }
}

impl From<ChangeOrderError> for ApiError {
    fn from(error: ChangeOrderError) -> Self {
        match error {
            ChangeOrderError::NotFound => Self::no_such("order"),
            ChangeOrderError::Forbidden { from, to } => {
                Self::forbidden(format!("only admins may move an order from {from} to {to}"))
            }
            ChangeOrderError::InvalidTransition { from, to } => {
                Self::new(ProblemCode::InvalidTransition, format!("an order cannot go from {from} to {to}"))
                    .with_errors(vec![FieldError::at_pointer(
                        "/status",
                        "invalid_transition",
                        format!("cannot follow {from}"),
                    )])
            }
            ChangeOrderError::VersionMismatch => Self::precondition_failed("order"),
            ChangeOrderError::Store(store) => store.into(),
        }
    }
}

impl From<PayError> for ApiError {
    fn from(error: PayError) -> Self {
        match error {
            PayError::NotFound => Self::no_such("order"),
            PayError::Disabled => Self::new(
                ProblemCode::PaymentsDisabled,
                "payments are not enabled on this deployment; an admin confirms orders instead",
            ),
            PayError::NotPayable(status) => {
                Self::new(ProblemCode::InvalidTransition, format!("an order that is {status} cannot be paid"))
            }
            PayError::InProgress => Self::new(
                ProblemCode::PaymentInProgress,
                "another payment of this order is processing; wait for its outcome (GET the order's payments)",
            )
            .with_retry_after(RETRY_AFTER_SECONDS),
            PayError::Declined(payment) => {
                let (code, message) =
                    payment.failure.as_ref().map_or(("card_declined", "the payment was declined"), |failure| {
                        (failure.code.as_str(), failure.message.as_str())
                    });
                Self::new(
                    ProblemCode::PaymentDeclined,
                    format!("the payment was declined ({code}); payment {} records it", payment.id),
                )
                .with_errors(vec![FieldError::at_pointer("/payment_method", code, message)])
            }
            PayError::ProviderUnavailable => Self::new(
                ProblemCode::PaymentProviderUnavailable,
                "the payment provider could not be reached; nothing was charged, retry later",
            )
            .with_retry_after(RETRY_AFTER_SECONDS),
            PayError::ProviderUntrustworthy(payment) => Self::new(
                ProblemCode::PaymentProviderError,
                format!(
                    "the payment provider's answer could not be trusted; payment {} stays processing and is \
                     settled by Orderly (GET it to see the outcome)",
                    payment.id
                ),
            ),
            PayError::OrderChangedDuringPayment(status) => Self::new(
                ProblemCode::InvalidTransition,
                format!("the order became {status} while it was being paid; the payment is being refunded"),
            ),
            PayError::Store(store) => store.into(),
        }
    }
}

impl From<GetPaymentError> for ApiError {
    fn from(error: GetPaymentError) -> Self {
        match error {
            GetPaymentError::NotFound => Self::no_such("payment"),
            GetPaymentError::Store(store) => store.into(),
        }
    }
}

impl From<ApplyEventError> for ApiError {
    fn from(error: ApplyEventError) -> Self {
        match error {
            ApplyEventError::Disabled => {
                Self::new(ProblemCode::PaymentsDisabled, "payments are not enabled on this deployment")
            }
            ApplyEventError::Rejected(EventRejected::InvalidSignature) => Self::new(
                ProblemCode::InvalidSignature,
                "the event's signature is missing, wrong or too old; nothing was applied",
            ),
            ApplyEventError::Rejected(EventRejected::Malformed(_)) => {
                Self::malformed_json("the signed event is not an event of the payment provider; nothing was applied")
            }
            ApplyEventError::Store(store) => store.into(),
        }
    }
}

impl From<GetInvoiceError> for ApiError {
    fn from(error: GetInvoiceError) -> Self {
        match error {
            GetInvoiceError::NotFound => Self::no_such("invoice"),
            GetInvoiceError::Store(store) => store.into(),
        }
    }
}

impl From<ReadFeedError> for ApiError {
    fn from(error: ReadFeedError) -> Self {
        match error {
            ReadFeedError::Forbidden => Self::forbidden("only admins may read the event feed"),
            ReadFeedError::Store(store) => store.into(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Forbidden => Self::forbidden("only admins may manage webhooks"),
            WebhookError::NotFound => Self::not_found("no such webhook endpoint, or no such delivery of it"),
            WebhookError::VersionMismatch => Self::precondition_failed("webhook endpoint"),
            WebhookError::EndpointDisabled => Self::new(
                ProblemCode::InvalidTransition,
                "the webhook endpoint is disabled, so the delivery would not be sent; enable it first \
                 (PATCH it with \"active\": true)",
            ),
            WebhookError::Invalid(violations) => Self::invalid_body(violations),
            WebhookError::Store(store) => store.into(),
            WebhookError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<TokenRejected> for ApiError {
    fn from(_: TokenRejected) -> Self {
        // Expired or invalid: the client is told only that the token is invalid.
        Self::unauthenticated(BearerChallenge::InvalidToken)
    }
}

impl From<NotReady> for ApiError {
    fn from(error: NotReady) -> Self {
        Self::unavailable(anyhow::Error::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_tilde_and_slash() {
        assert_eq!(json_pointer(&["a/b", "m~n", "0"]), "/a~1b/m~0n/0");
        assert_eq!(json_pointer::<&str>(&[]), "");
    }

    #[test]
    fn type_uris_are_unique_per_code() {
        let mut seen = std::collections::HashSet::new();
        for code in ProblemCode::ALL {
            assert!(seen.insert(code.type_uri("https://x/")), "{code}");
        }
        assert_eq!(ProblemCode::MalformedJson.type_uri("https://x/p/"), "https://x/p/malformed-json");
    }

    #[test]
    fn a_bare_status_maps_to_the_code_marked_for_it() {
        let bare = |status: u16| ProblemCode::for_status(StatusCode::from_u16(status).unwrap());
        assert_eq!(bare(400), Some(ProblemCode::InvalidParameter));
        assert_eq!(bare(401), Some(ProblemCode::Unauthenticated));
        assert_eq!(bare(422), Some(ProblemCode::ValidationFailed));
        assert_eq!(bare(503), Some(ProblemCode::ServiceUnavailable));
        assert_eq!(bare(502), Some(ProblemCode::InternalError), "any other server error");
        assert_eq!(bare(402), None);
        assert_eq!(bare(409), None, "a conflict has no one code");
    }

    #[test]
    fn one_takes_the_singular_and_every_other_count_the_plural() {
        assert_eq!(counted(1_usize, "field is", "fields are"), "1 field is");
        assert_eq!(counted(0_usize, "field is", "fields are"), "0 fields are");
        assert_eq!(counted(-1_i64, "unit", "units"), "-1 units");
        let fault = || FieldError::parameter("limit", "too_large", "is too large");
        assert_eq!(ApiError::invalid_parameters(vec![fault()]).detail, "1 parameter is invalid");
        assert_eq!(ApiError::invalid_parameters(vec![fault(), fault()]).detail, "2 parameters are invalid");
    }

    #[test]
    fn serialised_codes_match_as_str() {
        for code in ProblemCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(code.as_str()));
        }
    }

    fn written(text: &str) -> usize {
        // The string as serde_json writes it, without its quotes.
        serde_json::to_string(text).unwrap().len() - 2
    }

    #[test]
    fn at_most_100_entries_are_listed_and_more_are_flagged() {
        let faults = |n: usize| {
            (0..n).map(|i| FieldError::at_pointer(format!("/f{i}"), "unknown_field", "is not a field")).collect()
        };
        let problem = ApiError::validation(faults(5_000)).problem("https://x/", "/v1/users", "id");
        assert_eq!(problem.errors.len(), MAX_ERRORS);
        assert_eq!(problem.errors[99].pointer.as_deref(), Some("/f99"), "the first 100, in order");
        assert_eq!(problem.detail, "5000 fields are invalid");
        assert_eq!(serde_json::to_value(&problem).unwrap()["errors_truncated"], true);

        for n in [3, MAX_ERRORS] {
            let problem = ApiError::validation(faults(n)).problem("https://x/", "/v1/users", "id");
            assert_eq!(problem.errors.len(), n);
            let body = serde_json::to_value(&problem).unwrap();
            assert!(body.get("errors_truncated").is_none(), "{n}: {body}");
        }
    }

    #[test]
    fn a_text_that_fits_is_kept_as_it_is() {
        for text in ["", "/name", &"x".repeat(200), &"é".repeat(100)] {
            assert_eq!(bounded(text, 200), text);
        }
    }

    #[test]
    fn a_long_text_is_cut_on_a_char_boundary_to_its_written_size() {
        for text in ["x".repeat(10_000), "é".repeat(10_000), "€".repeat(301), "\u{1}".repeat(100), "\"\\\n".repeat(80)]
        {
            let cut = bounded(&text, 200);
            assert!(written(&cut) <= 200, "{} bytes written: {cut:?}", written(&cut));
            assert!(written(&cut) > 190, "no more is cut than needed: {cut:?}");
            assert!(cut.ends_with(CUT_MARK), "{cut:?}");
            assert!(text.starts_with(cut.trim_end_matches(CUT_MARK)), "a prefix of the text: {cut:?}");
        }
        assert_eq!(bounded(&"x".repeat(201), 200), format!("{}{CUT_MARK}", "x".repeat(197)));
    }

    #[test]
    fn entries_detail_and_instance_are_bounded() {
        let name = "n".repeat(10_000);
        let error = ApiError::new(ProblemCode::ValidationFailed, "d".repeat(5_000)).with_errors(vec![
            FieldError::at_pointer(json_pointer(&[&name]), "c".repeat(500), "m".repeat(500)),
            FieldError::parameter(&name, "unknown_parameter", "is not a parameter of this operation"),
        ]);
        let problem = error.problem("https://x/", &format!("/v1/{name}"), "id");
        let pointer = problem.errors[0].pointer.as_deref().unwrap();
        assert!(pointer.starts_with("/nnn") && written(pointer) <= MAX_ENTRY_TEXT_BYTES, "{pointer}");
        assert!(written(&problem.errors[0].code) <= MAX_ENTRY_CODE_BYTES);
        assert!(written(&problem.errors[0].message) <= MAX_ENTRY_TEXT_BYTES);
        assert!(written(problem.errors[1].parameter.as_deref().unwrap()) <= MAX_ENTRY_TEXT_BYTES);
        assert_eq!(problem.errors[1].message, "is not a parameter of this operation", "short texts are kept");
        assert!(written(&problem.detail) <= MAX_DETAIL_BYTES);
        assert!(written(&problem.instance) <= MAX_DETAIL_BYTES && problem.instance.starts_with("/v1/nnn"));
    }

    #[test]
    fn problem_bodies_are_bounded_whatever_the_input() {
        // The worst case: every text as long as can be and costly to write (control characters
        // are six bytes each once escaped), far more entries than are listed.
        let worst = "\u{1}".repeat(20_000);
        let errors = (0..10_000)
            .map(|i| {
                if i % 2 == 0 {
                    FieldError::at_pointer(worst.clone(), worst.clone(), worst.clone())
                } else {
                    FieldError::parameter(worst.clone(), worst.clone(), worst.clone())
                }
            })
            .collect();
        let error = ApiError::new(ProblemCode::ValidationFailed, worst.clone()).with_errors(errors);
        let request_id = "r".repeat(128);
        let body = serde_json::to_vec(&error.problem(crate::DEFAULT_PROBLEM_TYPE_BASE, &worst, &request_id)).unwrap();
        assert!(body.len() < 64 * 1024, "{} bytes", body.len());
    }
}
