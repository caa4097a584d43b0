//! `/v1/users` (docs/api.md#users-and-tokens): registration, the caller's own account, the admin collection, one
//! user, and changes to a user. Who may see or change whom is decided by `UserService`; the
//! admin collection takes `Authorised<ListUsers>` first, so a customer is refused 403 before
//! its query is checked (docs/api.md#authentication-and-authorisation).

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};

use orderly_domain::user::{UserCursor, UserId};

use crate::ApiState;
use crate::blocking::Needs;
use crate::caching::{self, CachePolicy};
use crate::dto::users::{
    self as dto, ListUsersParams, RegisterUserRequest, Registration, UpdateUserRequest, UserResponse,
};
use crate::extract::{
    Authorised, Caller, IdempotencyKeyHeader, IfMatch, IfNoneMatch, PathId, ValidJson, ValidQuery, operation,
};
use crate::idempotency::{self, Reply};
use crate::pagination::{self, CursorCodec};
use crate::problem::ApiError;
use crate::routes::responses::{self, NotModified, UserNotFound, UserPreconditionFailed};

/// Register a customer
///
/// Creates a customer account (self-service registration never creates an admin). The email
/// is trimmed, put in Unicode NFC and lower-cased, and stored and returned that way: two
/// spellings of one address (a precomposed `ü` or `u` + combining diaeresis) are one account,
/// and an address already registered is refused with `email_taken`. Each registration costs a
/// password hash, so it draws from the per-address `login` rate-limit bucket, shared with
/// `POST /v1/auth/tokens` (429 `rate_limited` when it is empty).
#[utoipa::path(
    operation_id = "registerUser",
    tag = "users",
    request_body(content = RegisterUserRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new user", body = UserResponse,
            headers(("Location" = String, description = "Path of the new user, `/v1/users/{id}`"))),
        (status = 409, description = "`email_taken`: the email address is already registered"),
    )
)]
#[post("/users")]
pub(crate) async fn register(
    req: HttpRequest,
    state: web::Data<ApiState>,
    key: IdempotencyKeyHeader,
    body: ValidJson<RegisterUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let Registration { email, name, password } = body.into_inner();
    let users = state.users.clone();
    // No caller: registration keys are scoped `Anonymous`.
    idempotency::respond(&req, &state, key, None, Needs::PasswordHash, move |repositories| {
        let user = users.within(repositories).register(email, name, password)?;
        Ok(Reply::created(&UserResponse::from(&user))?.location(format!("/v1/users/{}", user.id)))
    })
    .await
}

/// The caller
///
/// The account of the user the access token belongs to, with its `ETag`; honours
/// `If-None-Match` with 304.
#[utoipa::path(
    operation_id = "getCurrentUser",
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("If-None-Match" = Option<String>, Header, description = "ETag of a copy you hold; answered 304 when still current"),
    ),
    responses(
        (status = 200, description = "The caller", body = UserResponse,
            headers(("ETag" = String, description = "Strong entity tag of this version of the user, e.g. `\"3\"`"))),
        NotModified,
        (status = 404, description = "`not_found`: the token's user no longer exists"),
    )
)]
#[get("/users/me")]
pub(crate) async fn me(
    state: web::Data<ApiState>,
    caller: Caller,
    if_none_match: IfNoneMatch,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let user = state.blocking.call(&state.users, move |users| users.me(actor)).await?;
    Ok(caching::versioned(user.version, &UserResponse::from(&user), &if_none_match, CachePolicy::PrivateRevalidate))
}

/// List users
///
/// Admins only. Filter by `role` and `active`, order by `created_at` (oldest first) or
/// `-created_at`, and page with `limit` and `cursor` (or follow the `Link` header). Walking
/// every page returns every matching user exactly once, also while users register.
#[utoipa::path(
    operation_id = "listUsers",
    tag = "users",
    security(("bearer_auth" = [])),
    params(ListUsersParams, pagination::PageParams),
    responses(
        (status = 200, description = "One page of users", body = pagination::PageEnvelope<UserResponse>,
            headers(("Link" = String, description = "`<URL of the next page>; rel=\"next\"`, when there is one"))),
        (status = 403, description = "`forbidden`: only admins may list users"),
    )
)]
#[get("/users")]
pub(crate) async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cursors: web::Data<CursorCodec>,
    caller: Authorised<operation::ListUsers>,
    query: ValidQuery<ListUsersParams>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let (sort, limit) = (query.sort, query.limit);
    let actor = caller.actor();
    let page = state.blocking.call(&state.users, move |users| users.list(actor, &query)).await?;
    let next_cursor = page.next_after(UserCursor::of).map(|last| dto::next_cursor(&cursors, sort, last));
    let data = page.items.iter().map(UserResponse::from).collect();
    Ok(responses::page(&req, data, limit, next_cursor, CachePolicy::PrivateRevalidate))
}

/// One user
///
/// An admin may read anyone; a customer only themselves — anyone else is `not_found`, never
/// `forbidden`, so ids reveal nothing. Honours `If-None-Match` with 304.
#[utoipa::path(
    operation_id = "getUser",
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The user's id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of a copy you hold; answered 304 when still current"),
    ),
    responses(
        (status = 200, description = "The user", body = UserResponse,
            headers(("ETag" = String, description = "Strong entity tag of this version of the user, e.g. `\"3\"`"))),
        NotModified,
        UserNotFound,
    )
)]
#[get("/users/{id}")]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    caller: Caller,
    id: PathId,
    if_none_match: IfNoneMatch,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let user = state.blocking.call(&state.users, move |users| users.get(actor, UserId::from_uuid(id.0))).await?;
    Ok(caching::versioned(user.version, &UserResponse::from(&user), &if_none_match, CachePolicy::PrivateRevalidate))
}

/// Change a user
///
/// A merge patch (`application/json` or `application/merge-patch+json`): fields left out stay
/// as they are. Users may change their `name`, and their `password` by also sending
/// `current_password`; admins may also change `role` and `active` (a customer sending them is
/// `forbidden`). Changing the password or deactivating ends every session of the user, and
/// changing the role its access tokens (a refresh issues one with the new role): the tokens
/// already issued stop working within the revocation check interval (1 s by default). Send
/// `If-Match` with the ETag you read to make the change only if nobody changed the user since.
#[utoipa::path(
    operation_id = "updateUser",
    tag = "users",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, description = "Apply the change only if the user's ETag is still this one"),
    ),
    request_body(content(
        (UpdateUserRequest = "application/json"),
        (UpdateUserRequest = "application/merge-patch+json"),
    )),
    responses(
        (status = 200, description = "The updated user", body = UserResponse,
            headers(("ETag" = String, description = "Strong entity tag of the new version"))),
        (status = 403, description = "`forbidden`: a customer tried to change `role` or `active`"),
        (status = 404, description = "`not_found`: no such user, or not one the caller may change"),
        UserPreconditionFailed,
    )
)]
#[patch("/users/{id}")]
pub(crate) async fn update(
    state: web::Data<ApiState>,
    caller: Caller,
    id: PathId,
    if_match: IfMatch,
    body: ValidJson<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let users = state.users.clone();
    let actor = caller.actor();
    let changes = body.into_inner();
    let expected_version = if_match.expected_version();
    let needs = if changes.password.is_some() { Needs::PasswordHash } else { Needs::Database };
    let user = state
        .blocking
        .run(needs, move || users.update(actor, UserId::from_uuid(id.0), changes, expected_version))
        .await??;
    // A password, role or `active` change may have revoked the user's access tokens (ADR
    // 0015): this instance stops trusting what it remembers of them at once.
    state.revocations.forget(user.id);
    Ok(responses::changed(user.version, &UserResponse::from(&user)))
}
