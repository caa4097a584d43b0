//! The tables, kept by hand so one definition is valid on both backends: ids are `Text`
//! (UUIDs in their hyphenated lower-case form), times are `Timestamp` holding UTC, JSON is
//! `Text`. `MultiConnection` supports neither `Uuid`, `Timestamptz` nor `Jsonb`.
//!
//! Must match `migrations/postgres` and `migrations/sqlite`; the test suite exercises every
//! column on both.

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        role -> Text,
        active -> Bool,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        token_generation -> BigInt,
    }
}

diesel::table! {
    refresh_token_families (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        family_id -> Text,
        user_id -> Text,
        token_hash -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        spent_at -> Nullable<Timestamp>,
        replaced_by -> Nullable<Text>,
        access_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    events (id) {
        id -> Text,
        #[sql_name = "type"]
        event_type -> Text,
        subject_type -> Text,
        subject_id -> Text,
        data -> Text,
        occurred_at -> Timestamp,
        position -> BigInt,
    }
}

diesel::table! {
    /// One row (`id = 1`): the last event position handed out (see `events.rs`).
    event_positions (id) {
        id -> Integer,
        last_position -> BigInt,
    }
}

diesel::table! {
    products (id) {
        id -> Text,
        sku -> Text,
        name -> Text,
        name_folded -> Text,
        description -> Nullable<Text>,
        unit_price_amount -> BigInt,
        currency -> Text,
        on_hand -> BigInt,
        reserved -> BigInt,
        status -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    stock_adjustments (id) {
        id -> Text,
        product_id -> Text,
        delta -> BigInt,
        reason -> Text,
        actor_id -> Text,
        on_hand_after -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    orders (id) {
        id -> Text,
        customer_id -> Text,
        status -> Text,
        subtotal -> BigInt,
        tax -> BigInt,
        total -> BigInt,
        currency -> Text,
        invoice_number -> Nullable<Text>,
        version -> BigInt,
        placed_at -> Timestamp,
        updated_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    order_lines (order_id, line_no) {
        order_id -> Text,
        line_no -> Integer,
        product_id -> Text,
        sku -> Text,
        name -> Text,
        quantity -> BigInt,
        unit_price_amount -> BigInt,
        line_total_amount -> BigInt,
    }
}

diesel::table! {
    invoices (number) {
        number -> Text,
        order_id -> Text,
        customer_id -> Text,
        issued_at -> Timestamp,
        subtotal -> BigInt,
        tax -> BigInt,
        total -> BigInt,
        currency -> Text,
    }
}

diesel::table! {
    invoice_counters (year) {
        year -> Integer,
        last_number -> BigInt,
    }
}

diesel::table! {
    /// Payment attempts (docs/api.md#payments); see `payments.rs`.
    payments (id) {
        id -> Text,
        order_id -> Text,
        customer_id -> Text,
        status -> Text,
        amount -> BigInt,
        currency -> Text,
        provider -> Text,
        provider_reference -> Nullable<Text>,
        failure_code -> Nullable<Text>,
        failure_message -> Nullable<Text>,
        request_key -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Provider events already applied (each at most once); see `payments.rs`.
    provider_events (provider, event_id) {
        provider -> Text,
        event_id -> Text,
        applied_at -> Timestamp,
    }
}

diesel::table! {
    /// Durable background jobs; see `jobs.rs`.
    jobs (id) {
        id -> Text,
        kind -> Text,
        subject -> Text,
        run_at -> Timestamp,
        attempts -> Integer,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Webhook endpoints (docs/api.md#webhooks); see `webhooks.rs`. `event_types`: NULL for every type, else
    /// the types comma-separated.
    webhook_endpoints (id) {
        id -> Text,
        url -> Text,
        event_types -> Nullable<Text>,
        description -> Nullable<Text>,
        active -> Bool,
        secret -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// One event's delivery to one endpoint; see `webhooks.rs`.
    webhook_deliveries (id) {
        id -> Text,
        endpoint_id -> Text,
        event_id -> Text,
        event_type -> Text,
        status -> Text,
        attempts -> Integer,
        response_status -> Nullable<Integer>,
        duration_ms -> Nullable<Integer>,
        error -> Nullable<Text>,
        next_attempt_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// One row (`id = 1`): the feed position of the last event dispatched to webhooks.
    webhook_dispatch (id) {
        id -> Integer,
        position -> Nullable<BigInt>,
    }
}

diesel::joinable!(refresh_token_families -> users (user_id));
diesel::joinable!(refresh_tokens -> refresh_token_families (family_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(stock_adjustments -> products (product_id));
diesel::joinable!(stock_adjustments -> users (actor_id));
diesel::joinable!(orders -> users (customer_id));
diesel::joinable!(order_lines -> orders (order_id));
diesel::joinable!(order_lines -> products (product_id));
diesel::joinable!(invoices -> orders (order_id));
diesel::joinable!(payments -> orders (order_id));
diesel::joinable!(payments -> users (customer_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    refresh_token_families,
    refresh_tokens,
    events,
    products,
    stock_adjustments,
    orders,
    order_lines,
    invoices,
    invoice_counters,
    event_positions,
    payments,
    provider_events,
    jobs,
    webhook_endpoints,
    webhook_deliveries,
    webhook_dispatch
);

diesel::table! {
    /// Idempotency-Key records (docs/api.md#retries-idempotency-key); see `idempotency.rs`.
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        fingerprint -> Text,
        state -> Text,
        response_status -> Nullable<Integer>,
        response_headers -> Nullable<Text>,
        response_body -> Nullable<Binary>,
        created_at -> Timestamp,
        locked_until -> Timestamp,
    }
}
