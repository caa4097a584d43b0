//! The OpenAPI 3.1 document (README.md#resource-model, "operational") and where it is served
//! (`/openapi.json`, Swagger UI at `/docs`, vendored into the binary: no CDN).
//!
//! The document is assembled in three steps, so that it cannot drift from the router:
//! 1. [`ApiDoc`] — info, licence, servers, tags and the shared schemas;
//! 2. the routes — `crate::routes::register` adds every operation from its `#[utoipa::path]`,
//!    which lists the statuses specific to that operation;
//! 3. [`finish`] — gives each of an operation's own 4xx and 5xx its problem body (a route
//!    states only the status and why), and adds the statuses the *machinery* can return on an
//!    operation, derived from what the operation has: every one may fail with 500, 429 (rate
//!    limiting, with `Retry-After`) and (except liveness) 503; one with a body also 400
//!    `malformed_json`, 413, 415 and 422; one with parameters 400 `invalid_parameter`; one with
//!    a security requirement 401. It also documents the `X-Request-Id` header on every request and response, the
//!    `RateLimit-Policy` and `RateLimit` headers on every response, the bearer scheme, and
//!    `security: []` on operations anyone may call. Every `POST` gets the `Idempotency-Key` header parameter;
//!    the operations whose outcomes are stored (`idempotency::STORED_OPERATIONS`) also get
//!    `Idempotency-Replayed` on their successes, 409 `idempotency_in_progress` and 422
//!    `idempotency_key_reused`. Machinery responses that no operation refers to are left out
//!    (no unused components, as Redocly's lint requires).

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa::OpenApi;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayItems, Components, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Header, HeaderBuilder, Ref, RefOr, Required};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::extract::conditional::{CONDITION_PATTERN, REQUIRED_CONDITION_PATTERN};
use crate::extract::idempotency_key::IDEMPOTENCY_KEY;
use crate::extract::path::CANONICAL_UUID_PATTERN;
use crate::field_rules::property_of;
use crate::idempotency::{IDEMPOTENCY_REPLAYED, STORED_OPERATIONS};
use crate::problem::{FieldError, PROBLEM_JSON, ProblemCode, ProblemDetails};

/// Where the document is served.
pub const OPENAPI_JSON_PATH: &str = "/openapi.json";
/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";
/// Routes that are served but are not API operations (so not in the document); the fallback
/// needs them for its method table. `{tail:.*}` matches the rest of the path.
pub const UNDOCUMENTED_ROUTES: [(&str, &[&str]); 3] =
    [(OPENAPI_JSON_PATH, &["GET"]), (DOCS_PATH, &["GET"]), ("/docs/{tail:.*}", &["GET"])];

/// The bearer security scheme's name, as operations reference it.
pub const BEARER_AUTH: &str = "bearer_auth";

const X_REQUEST_ID: &str = "X-Request-Id";
/// The IETF RateLimit fields (`crate::rate_limit`), on every response while limits are on.
const RATE_LIMIT_POLICY: &str = "RateLimit-Policy";
const RATE_LIMIT: &str = "RateLimit";
const RETRY_AFTER: &str = "Retry-After";
/// Operations that never touch the store, so cannot answer 503. (`/metrics` reads the pool's
/// state, which is in memory, not the database.)
const WITHOUT_STORE: [&str; 2] = ["getHealth", "getMetrics"];

/// The static part of the document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orderly API",
        description = "Order management: a product catalogue with stock, customers who place orders that \
                       reserve stock, and invoices issued when an order is confirmed.\n\n\
                       Every error is an RFC 9457 problem (`application/problem+json`) whose `code` is stable; \
                       every response carries `X-Request-Id`.\n\n\
                       Checks run in this order: authentication (401), then authorisation (403 `forbidden` for an \
                       operation the caller's role may never perform, such as a customer calling an admin-only \
                       operation), then validation of the path, query, headers and body (400, 413, 415, 422, 428): \
                       a caller who may not use an operation learns nothing from its validation.\n\n\
                       Resource ids are UUIDs written in canonical form (lower-case hex, hyphenated); any other \
                       spelling in a path or query parameter is 400 `invalid_parameter`, so one resource has one URL.",
        license(name = "MIT", identifier = "MIT"),
    ),
    servers((url = "/", description = "This server")),
    tags(
        (name = "products", description = "The catalogue: products, their prices and stock, and the stock audit trail"),
        (name = "orders", description = "Orders: placing them (which reserves stock), reading them, and moving \
                                         them from pending to confirmed, shipped and delivered, or cancelled"),
        (name = "invoices", description = "Invoices, issued when an order is confirmed; numbered `YYYY-NNNNNN` and \
                                           never changed"),
        (name = "payments", description = "Paying orders through the payment provider, the attempts, and the \
                                           provider's signed event notifications"),
        (name = "events", description = "The event feed: every state change, in commit order, for consumers that \
                                         poll it with their last cursor"),
        (name = "webhooks", description = "Webhook endpoints that the event feed is pushed to (signed per Standard \
                                           Webhooks 1.0), their delivery logs, and retrying a delivery"),
        (name = "users", description = "Accounts: registration, profiles, roles"),
        (name = "auth", description = "Sessions: access and refresh tokens"),
        (name = "operations", description = "Liveness and readiness probes, and Prometheus metrics"),
    ),
    components(schemas(
        ProblemDetails,
        FieldError,
        ProblemCode,
        crate::dto::users::UserSortParameter,
        crate::dto::products::ProductSortParameter,
        crate::dto::products::ProductStatusDto,
        crate::dto::orders::OrderSortParameter,
        crate::dto::orders::OrderStatusDto,
        crate::dto::invoices::InvoiceSortParameter,
        crate::dto::events::EventTypeDto,
        crate::dto::payments::PaymentStatusDto,
        crate::dto::webhooks::DeliveryStatusDto,
    )),
)]
pub struct ApiDoc;

impl ApiDoc {
    /// The static part, with the version of this build.
    pub fn base() -> utoipa::openapi::OpenApi {
        let mut api = Self::openapi();
        api.info.version = env!("CARGO_PKG_VERSION").to_owned();
        api
    }
}

/// A response the machinery adds, as the response component `name`; besides `X-Request-Id`
/// and the RateLimit fields, which every response carries, it may carry one more `header`.
struct MachineryResponse {
    name: &'static str,
    status: &'static str,
    description: &'static str,
    header: ExtraHeader,
}

/// The header a machinery response carries besides those every response does.
enum ExtraHeader {
    None,
    /// (name, description), described on the response itself.
    Inline(&'static str, &'static str),
    /// A header component, by name.
    Component(&'static str),
}

const MALFORMED_JSON: MachineryResponse = MachineryResponse {
    name: "MalformedJson",
    status: "400",
    description: "`malformed_json`: the body is not JSON, not UTF-8, or nested deeper than 32 levels",
    header: ExtraHeader::None,
};
const BAD_REQUEST: MachineryResponse = MachineryResponse {
    name: "BadRequest",
    status: "400",
    description: "`malformed_json`: the body is not JSON, not UTF-8, or nested deeper than 32 levels; or \
                  `invalid_parameter`: a query, path or header parameter is invalid (`errors[].parameter`)",
    header: ExtraHeader::None,
};
const INVALID_PARAMETER: MachineryResponse = MachineryResponse {
    name: "InvalidParameter",
    status: "400",
    description: "`invalid_parameter`: a query, path or header parameter is invalid or unknown; `errors[].parameter` \
                  names each",
    header: ExtraHeader::None,
};
const UNAUTHENTICATED: MachineryResponse = MachineryResponse {
    name: "Unauthenticated",
    status: "401",
    description: "`unauthenticated`: no bearer token, or one that is malformed, expired, wrongly signed or revoked \
                  (by a logout, password change, deactivation or role change since it was issued)",
    header: ExtraHeader::Inline(
        "WWW-Authenticate",
        "`Bearer`, or `Bearer error=\"invalid_token\"` when a token was sent",
    ),
};
const PAYLOAD_TOO_LARGE: MachineryResponse = MachineryResponse {
    name: "PayloadTooLarge",
    status: "413",
    description: "`payload_too_large`: the body is over 64 KiB",
    header: ExtraHeader::None,
};
const UNSUPPORTED_MEDIA_TYPE: MachineryResponse = MachineryResponse {
    name: "UnsupportedMediaType",
    status: "415",
    description: "`unsupported_media_type`: the body is not sent as `application/json` (PATCH: also \
                  `application/merge-patch+json`)",
    header: ExtraHeader::None,
};
const VALIDATION_FAILED: MachineryResponse = MachineryResponse {
    name: "ValidationFailed",
    status: "422",
    description: "`validation_failed`: the body breaks the schema or a field rule; `errors` lists every fault \
                  with a JSON Pointer",
    header: ExtraHeader::None,
};
const INTERNAL_ERROR: MachineryResponse = MachineryResponse {
    name: "InternalError",
    status: "500",
    description: "`internal_error`: something unexpected failed; it is logged under the request id",
    header: ExtraHeader::None,
};
const SERVICE_UNAVAILABLE: MachineryResponse = MachineryResponse {
    name: "ServiceUnavailable",
    status: "503",
    description: "`service_unavailable`: the database cannot be reached; retry after `Retry-After` seconds",
    header: ExtraHeader::Inline(RETRY_AFTER, "Seconds to wait before retrying"),
};

/// 429: every operation, whatever its route, counts against the caller's bucket.
const RATE_LIMITED: MachineryResponse = MachineryResponse {
    name: "RateLimited",
    status: "429",
    description: "`rate_limited`: this caller (the user of a valid token, otherwise the client address) has used \
                  its requests for now — or, on `POST /v1/auth/tokens` and `POST /v1/users`, this address its \
                  logins and registrations (one `login` bucket for both); retry after `Retry-After` seconds. \
                  `RateLimit` shows which policy is exhausted",
    header: ExtraHeader::Component(RETRY_AFTER),
};

/// 409 `idempotency_in_progress`, as a description to add to an operation's own 409.
const IDEMPOTENCY_IN_PROGRESS: &str = "`idempotency_in_progress`: the first request with this `Idempotency-Key` is \
    still running; retry after `Retry-After` seconds to get its outcome";
/// 422 `idempotency_key_reused`, as a description to add to a stored operation's 422 (its own,
/// or else `ValidationFailed`'s as the component `ValidationFailedOrKeyReused`).
const IDEMPOTENCY_KEY_REUSED: &str = "`idempotency_key_reused`: the `Idempotency-Key` was already used with a \
    different request (method, path or body); send a new key for a new request";

/// A reference to the response component `name`, built and added to `shared` on first use: the
/// machinery responses that no operation refers to stay out of the document (e.g.
/// `MalformedJson` while every operation with a body also has parameters: each `POST` takes
/// `Idempotency-Key`), as Redocly's `no-unused-components` requires.
fn refer_to_response(
    shared: &mut BTreeMap<String, RefOr<Response>>,
    name: &str,
    build: impl FnOnce() -> Response,
) -> RefOr<Response> {
    shared.entry(name.to_owned()).or_insert_with(|| RefOr::T(build()));
    RefOr::Ref(Ref::from_response_name(name))
}

impl MachineryResponse {
    fn response(&self) -> Response {
        let mut response = problem(self.description).build();
        refer_to_common_headers(&mut response);
        match self.header {
            ExtraHeader::None => {}
            ExtraHeader::Inline(name, description) => {
                response.headers.insert(name.to_owned(), RefOr::T(string_header(description)));
            }
            ExtraHeader::Component(name) => refer_to_header(&mut response, name),
        }
        response
    }
}

/// The header components: (name, description).
const HEADERS: [(&str, &str); 5] = [
    (
        X_REQUEST_ID,
        "The request's id: the client's own if it sent a valid one (1–128 characters of `A-Za-z0-9._-`), \
         otherwise a new UUIDv7. Quote it when reporting a problem.",
    ),
    (
        IDEMPOTENCY_REPLAYED,
        "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`, sent \
         again byte for byte (its `request_id`, if a problem, is the earlier request's); absent otherwise.",
    ),
    // The RateLimit fields and `Retry-After` (`crate::rate_limit`).
    (
        RATE_LIMIT_POLICY,
        "The rate-limit policies applied to this request (IETF RateLimit header fields draft): \
         `\"default\";q=600;w=60` is `q` requests per `w` seconds per caller (the user of a valid token, \
         otherwise the client address); `POST /v1/auth/tokens` and `POST /v1/users` also list \
         `\"login\";q=10;w=60`, one bucket per client address for logins and registrations together. Absent while rate limiting is off, and for a policy whose store could not be reached (the \
         request was not limited by it).",
    ),
    (
        RATE_LIMIT,
        "What is left of each policy in `RateLimit-Policy`, in the same order: `\"default\";r=599;t=1` is `r` \
         requests left after this one and `t` whole seconds until the full quota is available again.",
    ),
    (
        RETRY_AFTER,
        "Whole seconds to wait before retrying (at least 1): with `rate_limited`, until the policy that refused \
         has a request available again.",
    ),
];

/// Completes the document assembled from the routes (step 3 above).
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER_AUTH,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    for (name, description) in HEADERS {
        components.headers.insert(name.to_owned(), RefOr::T(string_header(description)));
    }
    reference_inlined_components(components);

    for item in api.paths.paths.values_mut() {
        if let Some(post) = &mut item.post {
            document_idempotency(post, &mut components.responses);
        }
        let operations =
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head];
        for operation in operations.into_iter().flatten() {
            complete_operation(operation, &mut components.responses);
            document_links(operation);
        }
    }
    crate::field_rules::describe(&mut api);
    api
}

/// One OpenAPI link: to the operation `to`, with the values it takes from the exchange it
/// follows (runtime expressions, OpenAPI §4.8.20.4).
struct LinkSpec {
    /// The link's name; by default, `to` with a capital (`getProduct` → `GetProduct`).
    name: Option<&'static str>,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    description: &'static str,
    /// A request body for `to`, as JSON whose strings may be runtime expressions.
    body: Option<&'static str>,
}

const fn link(
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    description: &'static str,
) -> LinkSpec {
    LinkSpec { name: None, to, parameters, description, body: None }
}

/// Link parameters: the resource the response created, or the one the request named; with
/// `_VERSION`, also the version the response read (`If-Match` from its `ETag`).
const NEW_ID: (&str, &str) = ("path.id", "$response.body#/id");
const SAME_ID: (&str, &str) = ("path.id", "$request.path.id");
const READ_ETAG: (&str, &str) = ("header.If-Match", "$response.header.ETag");
const NEW: &[(&str, &str)] = &[NEW_ID];
const NEW_VERSION: &[(&str, &str)] = &[NEW_ID, READ_ETAG];
const SAME: &[(&str, &str)] = &[SAME_ID];
const SAME_VERSION: &[(&str, &str)] = &[SAME_ID, READ_ETAG];

/// How one answer leads to the next request, by the operation and status it starts from: a
/// client (or a stateful fuzzer) follows these to read what it created, change it with the
/// ETag it was given, and from a confirmed order to its invoice.
const LINKS: &[((&str, &str), &[LinkSpec])] = &[
    (
        ("createProduct", "201"),
        &[
            link("getProduct", NEW, "Read the product just created"),
            link("updateProduct", NEW_VERSION, "Change it, with the ETag of this version"),
            link("archiveProduct", NEW_VERSION, "Archive it, with the ETag of this version"),
            LinkSpec { name: Some("AdjustStock"), ..link("createStockAdjustment", NEW, "Add or remove stock") },
            link("listStockAdjustments", NEW, "Its stock audit trail"),
        ],
    ),
    (
        ("getProduct", "200"),
        &[
            link("updateProduct", SAME_VERSION, "Change the product, with the ETag just read"),
            link("archiveProduct", SAME_VERSION, "Archive the product, with the ETag just read"),
        ],
    ),
    (("updateProduct", "200"), &[link("getProduct", SAME, "Read the changed product")]),
    (
        ("createStockAdjustment", "201"),
        &[
            link("getProduct", SAME, "Read the product's new stock"),
            LinkSpec {
                body: Some(r#"{"items": [{"product_id": "$request.path.id", "quantity": 1}]}"#),
                ..link("placeOrder", &[], "Order one unit of the product now in stock")
            },
        ],
    ),
    (
        ("placeOrder", "201"),
        &[
            link("getOrder", NEW, "Read the order just placed"),
            link("payOrder", NEW, "Pay the order just placed"),
            link("listPayments", NEW, "Its payment attempts"),
            link("changeOrderStatus", NEW_VERSION, "Confirm or cancel it, with the ETag of this version"),
        ],
    ),
    (("getOrder", "200"), &[link("changeOrderStatus", SAME_VERSION, "Move the order on, with the ETag just read")]),
    (
        ("changeOrderStatus", "200"),
        &[
            link("getOrder", SAME, "Read the order in its new status"),
            link(
                "getInvoice",
                &[("path.number", "$response.body#/invoice_number")],
                "Read the invoice issued when the order was confirmed (`invoice_number` is null before)",
            ),
        ],
    ),
    (("registerUser", "201"), &[link("getUser", NEW, "Read the account just registered")]),
    (("getUser", "200"), &[link("updateUser", SAME_VERSION, "Change the account, with the ETag just read")]),
    (
        ("createWebhookEndpoint", "201"),
        &[
            link("getWebhookEndpoint", NEW, "Read the endpoint just registered"),
            link("updateWebhookEndpoint", NEW_VERSION, "Change it, with the ETag of this version"),
            link("deleteWebhookEndpoint", NEW_VERSION, "Remove it, with the ETag of this version"),
            link("listWebhookDeliveries", NEW, "Its delivery log"),
        ],
    ),
    (
        ("getWebhookEndpoint", "200"),
        &[
            link("updateWebhookEndpoint", SAME_VERSION, "Change the endpoint, with the ETag just read"),
            link("deleteWebhookEndpoint", SAME_VERSION, "Remove the endpoint, with the ETag just read"),
        ],
    ),
];

/// Adds the [`LINKS`] that start from `operation` to its responses.
fn document_links(operation: &mut Operation) {
    let Some(id) = operation.operation_id.as_deref() else { return };
    for ((_, status), specs) in LINKS.iter().filter(|((from, _), _)| *from == id) {
        let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else { continue };
        for spec in *specs {
            let mut link = LinkBuilder::new().operation_id(spec.to).description(spec.description);
            for (name, expression) in spec.parameters {
                link = link.parameter(*name, *expression);
            }
            let body = spec.body.and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok());
            link = link.request_body(body);
            let name = spec.name.map_or_else(|| spec.to[..1].to_uppercase() + &spec.to[1..], str::to_owned);
            response.links.insert(name, RefOr::T(link.build()));
        }
    }
}

/// States the deployment's one currency (docs/api.md#money-and-time) where requests
/// name a currency: `MoneyInput.currency` is `enum: [code]`, so the document served by a
/// deployment says exactly which code its request bodies take (any other is 422
/// `unsupported_currency`). Responses keep the general ISO 4217 shape.
pub fn describe_currency(api: &mut utoipa::openapi::OpenApi, code: &str) {
    let Some(components) = &mut api.components else { return };
    let Some(RefOr::T(Schema::Object(currency))) = property_of(components, "MoneyInput", "currency") else { return };
    currency.pattern = None;
    currency.enum_values = Some(vec![serde_json::Value::from(code)]);
    currency.example = None;
    currency.description = Some(format!(
        "ISO 4217 code of the deployment's one currency: `{code}` on this server (`ORDERLY_CURRENCY`); \
         another code is 422 `unsupported_currency`."
    ));
}

/// Adds what the machinery adds to `operation` (step 3 above), with the response components
/// it refers to added to `shared`.
fn complete_operation(operation: &mut Operation, shared: &mut BTreeMap<String, RefOr<Response>>) {
    let has_body = operation.request_body.is_some();
    let has_parameters = operation.parameters.iter().flatten().any(|parameter| match parameter {
        RefOr::T(parameter) => {
            parameter.parameter_in != ParameterIn::Header
                || parameter.name.starts_with("If-")
                || parameter.name == IDEMPOTENCY_KEY
        }
        RefOr::Ref(_) => true,
    });
    let secured = operation.security.as_ref().is_some_and(|security| !security.is_empty());
    let touches_store = !operation.operation_id.as_deref().is_some_and(|id| WITHOUT_STORE.contains(&id));

    let mut machinery: Vec<&MachineryResponse> = Vec::new();
    match (has_body, has_parameters) {
        (true, true) => machinery.push(&BAD_REQUEST),
        (true, false) => machinery.push(&MALFORMED_JSON),
        (false, true) => machinery.push(&INVALID_PARAMETER),
        (false, false) => {}
    }
    if secured {
        machinery.push(&UNAUTHENTICATED);
    }
    if has_body {
        machinery.extend([&PAYLOAD_TOO_LARGE, &UNSUPPORTED_MEDIA_TYPE, &VALIDATION_FAILED]);
    }
    machinery.extend([&RATE_LIMITED, &INTERNAL_ERROR]);
    if touches_store {
        machinery.push(&SERVICE_UNAVAILABLE);
    }

    let responses = &mut operation.responses.responses;
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response {
            refer_to_common_headers(response);
            // Every refusal is a problem: an operation's own 4xx and 5xx state their status and
            // why, and get the body here.
            if status.starts_with(['4', '5']) && response.content.is_empty() {
                response.content.insert(PROBLEM_JSON.to_owned(), RefOr::T(problem_content()));
            }
        }
    }
    for machinery in machinery {
        responses
            .entry(machinery.status.to_owned())
            .or_insert_with(|| refer_to_response(shared, machinery.name, || machinery.response()));
    }
    // Request bodies of this API are always required.
    if let Some(RefOr::T(body)) = &mut operation.request_body {
        body.required = Some(Required::True);
    }
    document_condition_syntax(operation);
    document_id_syntax(operation);
    // Say so explicitly when an operation needs no token (`security: []`).
    operation.security.get_or_insert_with(Vec::new);
    operation.parameters.get_or_insert_with(Vec::new).push(RefOr::T(request_id_parameter()));
}

/// The entity-tag list syntax of `If-Match` / `If-None-Match` (RFC 9110 §13.1), as a
/// `pattern`, so that a client (or a fuzzer) knows which values are well formed: anything
/// else is 400 `invalid_parameter`. Where `If-Match` is required, `*` is not a version, and
/// is answered 428, so the pattern leaves it out.
fn document_condition_syntax(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else { continue };
        if parameter.parameter_in != ParameterIn::Header
            || !(parameter.name.eq_ignore_ascii_case("If-Match")
                || parameter.name.eq_ignore_ascii_case("If-None-Match"))
        {
            continue;
        }
        let required = parameter.name.eq_ignore_ascii_case("If-Match") && parameter.required == Required::True;
        let pattern = if required { REQUIRED_CONDITION_PATTERN } else { CONDITION_PATTERN };
        parameter.schema = Some(RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .examples([serde_json::json!("\"3\"")])
                .build(),
        )));
    }
}

/// Every UUID-valued path or query parameter (the resource ids, the `customer_id` filter) is
/// accepted in its canonical spelling only (docs/api.md#resource-ids: one resource, one URL); its schema says
/// so with a `pattern`, and its description with the answer to any other spelling.
fn document_id_syntax(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else { continue };
        if !matches!(parameter.parameter_in, ParameterIn::Path | ParameterIn::Query) {
            continue;
        }
        let Some(RefOr::T(Schema::Object(schema))) = &mut parameter.schema else { continue };
        if schema.format != Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)) {
            continue;
        }
        schema.pattern = Some(CANONICAL_UUID_PATTERN.to_owned());
        let rule = "In canonical form: lower-case hex, hyphenated. Any other spelling (braces, `urn:uuid:`, \
                    without hyphens, upper-case hex) is 400 `invalid_parameter`.";
        parameter.description = Some(match parameter.description.take() {
            Some(description) => format!("{}. {rule}", description.trim_end_matches('.')),
            None => rule.to_owned(),
        });
    }
}

/// `Idempotency-Key` on a `POST`, and for the operations that store their outcomes what a
/// key adds to the answers (docs/api.md#retries-idempotency-key).
fn document_idempotency(operation: &mut Operation, shared: &mut BTreeMap<String, RefOr<Response>>) {
    let stored = operation.operation_id.as_deref().is_some_and(|id| STORED_OPERATIONS.contains(&id));
    operation.parameters.get_or_insert_with(Vec::new).push(RefOr::T(idempotency_key_parameter(stored)));
    if !stored {
        return;
    }
    let responses = &mut operation.responses.responses;
    for (status, response) in responses.iter_mut() {
        if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
            refer_to_header(response, IDEMPOTENCY_REPLAYED);
        }
    }
    match responses.get_mut("409") {
        Some(RefOr::T(conflict)) => {
            conflict.description = format!("{}. Or {IDEMPOTENCY_IN_PROGRESS}", conflict.description);
            conflict.headers.insert(
                RETRY_AFTER.to_owned(),
                RefOr::T(string_header("Seconds to wait before retrying, with `idempotency_in_progress`")),
            );
        }
        _ => {
            let conflict = MachineryResponse {
                name: "IdempotencyInProgress",
                status: "409",
                description: IDEMPOTENCY_IN_PROGRESS,
                header: ExtraHeader::Inline(RETRY_AFTER, "Seconds to wait before retrying"),
            };
            responses.insert(conflict.status.to_owned(), RefOr::T(conflict.response()));
        }
    }
    let or_key_reused = |response: &mut Response| {
        response.description = format!("{}. Or {IDEMPOTENCY_KEY_REUSED}", response.description);
    };
    match responses.get_mut("422") {
        Some(RefOr::T(unprocessable)) => or_key_reused(unprocessable),
        _ => {
            let reference = refer_to_response(shared, "ValidationFailedOrKeyReused", || {
                let mut response = VALIDATION_FAILED.response();
                or_key_reused(&mut response);
                response
            });
            responses.insert("422".to_owned(), reference);
        }
    }
}

fn idempotency_key_parameter(stored: bool) -> Parameter {
    let description = if stored {
        "Makes retrying safe: 1–255 printable ASCII characters, e.g. a UUID; anything else is 400 \
         `invalid_parameter`. The first request with this key (per caller) runs; the same request again (same \
         method, path and body) within 24 hours gets the first answer again, byte for byte, with \
         `Idempotency-Replayed: true`, and changes nothing. Refusals (4xx) are stored too; server failures (5xx) \
         are not, so a retry runs again. The key with a different request is 422 `idempotency_key_reused`; \
         while the first request is still running, 409 `idempotency_in_progress`."
    } else {
        "Accepted and checked (1–255 printable ASCII characters; anything else is 400 `invalid_parameter`) but \
         not stored, so a retry runs again: this operation's answers either carry credentials, which are never \
         kept for replay, or are safe to repeat by themselves."
    };
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(255))
        .pattern(Some("^[\\x20-\\x7E]+$"))
        .examples([serde_json::json!("0192f5c2-7b1e-7c3a-9f2d-1a2b3c4d5e6f")]);
    optional_header(IDEMPOTENCY_KEY, description, schema)
}

/// utoipa inlines the type argument of a generic schema (`PageEnvelope<UserResponse>` gets a
/// copy of `User`); point such copies at the named component instead, so clients generate one
/// type per schema.
fn reference_inlined_components(components: &mut Components) {
    let named: Vec<(String, Schema)> = components
        .schemas
        .iter()
        .filter_map(|(name, schema)| match schema {
            RefOr::T(schema) => Some((name.clone(), schema.clone())),
            RefOr::Ref(_) => None,
        })
        .collect();
    for (owner, schema) in components.schemas.iter_mut() {
        if let RefOr::T(schema) = schema {
            replace_copies(schema, &named, owner);
        }
    }
}

fn replace_copies(schema: &mut Schema, named: &[(String, Schema)], owner: &str) {
    let children: Vec<&mut RefOr<Schema>> = match schema {
        Schema::Object(object) => object.properties.values_mut().collect(),
        Schema::Array(array) => match &mut array.items {
            ArrayItems::RefOrSchema(items) => vec![items.as_mut()],
            ArrayItems::False => Vec::new(),
        },
        _ => Vec::new(),
    };
    for child in children {
        let RefOr::T(inner) = child else { continue };
        match named.iter().find(|(name, candidate)| name != owner && candidate == inner) {
            Some((name, _)) => *child = RefOr::Ref(Ref::from_schema_name(name.clone())),
            None => replace_copies(inner, named, owner),
        }
    }
}

fn request_id_parameter() -> Parameter {
    let description = "Your id for this request (1–128 characters of `A-Za-z0-9._-`); echoed back, and replaced \
                       by a generated one when invalid or absent.";
    optional_header(X_REQUEST_ID, description, Object::with_type(Type::String))
}

/// A request header parameter that a client may leave out.
fn optional_header(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// A problem response (`application/problem+json`, `ProblemDetails`), as the machinery's and
/// the operations' own (`crate::routes::responses`) are written.
pub(crate) fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(PROBLEM_JSON, problem_content())
}

/// A problem body: `application/problem+json` with the `ProblemDetails` schema.
fn problem_content() -> Content {
    Content::new(Some(Ref::from_schema_name("ProblemDetails")))
}

/// `X-Request-Id` and the RateLimit fields, which every response carries.
fn refer_to_common_headers(response: &mut Response) {
    for name in [X_REQUEST_ID, RATE_LIMIT_POLICY, RATE_LIMIT] {
        refer_to_header(response, name);
    }
}

fn refer_to_header(response: &mut Response, name: &str) {
    response.headers.insert(name.to_owned(), RefOr::Ref(Ref::new(format!("#/components/headers/{name}"))));
}

pub(crate) fn string_header(description: &str) -> Header {
    HeaderBuilder::new().schema(Some(Object::with_type(Type::String))).description(Some(description)).build()
}

/// Serves the document and Swagger UI.
pub fn serve(config: &mut web::ServiceConfig, api: utoipa::openapi::OpenApi) {
    let ui_config = Config::new([OPENAPI_JSON_PATH]).validator_url("none");
    config
        .service(SwaggerUi::new(format!("{DOCS_PATH}/{{_:.*}}")).url(OPENAPI_JSON_PATH, api).config(ui_config))
        .route(DOCS_PATH, web::get().to(redirect_to_docs));
}

/// `/docs` → `/docs/`, where Swagger UI's relative asset paths resolve.
async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, format!("{DOCS_PATH}/"))).finish()
}
