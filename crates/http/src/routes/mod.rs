//! The routes: thin handlers that extract their inputs, make **one** service call on the
//! blocking pool, and map the result to a response (failures map through
//! `From<DomainError> for ApiError`).
//!
//! Each handler is registered with `#[get]`/`#[post]`/`#[patch]` and described with
//! `#[utoipa::path]`, through utoipa-actix-web's `scope`/`service`: registering a route *is*
//! documenting it, and the fallback's method table is read off the same document.

use actix_web::dev::{ServiceFactory, ServiceRequest};
use actix_web::web;
use utoipa_actix_web::{UtoipaApp, scope};

use crate::fallback;

pub mod auth;
pub mod events;
pub mod health;
pub mod invoices;
pub mod orders;
pub mod payments;
pub mod products;
pub mod responses;
pub mod users;
pub mod webhooks;

/// Registers every documented route on `app`.
pub fn register<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.service(health::healthz).service(health::readyz).service(health::metrics).service(
        scope::scope("/v1")
            .service(users::register)
            // `/users/me` before `/users/{id}`, or `me` would be taken for an id.
            .service(users::me)
            // Any other method on `/users/me` is a 405 naming GET, not a PATCH of the user
            // whose id is "me" (400): the literal path is its own resource (`fallback`).
            .map(|scope| scope.service(web::resource("/users/me").default_service(web::to(fallback::answer))))
            .service(users::list)
            .service(users::get)
            .service(users::update)
            .service(products::list)
            .service(products::create)
            .service(products::get)
            .service(products::update)
            .service(products::archive)
            .service(products::adjust_stock)
            .service(products::list_adjustments)
            .service(orders::place)
            .service(orders::list)
            .service(orders::get)
            .service(orders::change_status)
            .service(payments::pay)
            .service(payments::list)
            .service(payments::get)
            .service(payments::receive_event)
            .service(invoices::list)
            .service(invoices::get)
            .service(events::list)
            .service(webhooks::create)
            .service(webhooks::list)
            .service(webhooks::get)
            .service(webhooks::update)
            .service(webhooks::remove)
            .service(webhooks::list_deliveries)
            .service(webhooks::retry)
            .service(auth::login)
            .service(auth::refresh)
            .service(auth::logout),
    )
}
