//! Use cases. Each public method is one thing a caller can do; it checks authorisation,
//! applies the business rules and calls the ports. Services hold their ports as
//! `Arc<dyn Port>` and are cheap to clone.

pub mod events;
pub mod jobs;
pub mod orders;
pub mod payments;
pub mod products;
pub mod sessions;
pub mod use_cases;
pub mod users;
pub mod webhooks;

#[cfg(test)]
mod fixtures;

pub use events::{EventService, ReadFeedError};
pub use jobs::{JobOutcome, JobReport, JobWorker};
pub use orders::{ChangeOrderError, GetInvoiceError, GetOrderError, OrderPolicy, OrderService, PlaceOrderError};
pub use payments::{
    ApplyEventError, EventApplication, GetPaymentError, PayError, PaymentOutcome, PaymentPolicy, PaymentRequestContext,
    PaymentService,
};
pub use products::{
    AdjustStockError, ChangeProductError, CreateProductError, GetProductError, ListAdjustmentsError, ProductDraft,
    ProductService,
};
pub use sessions::{
    Admission, AuthenticationError, GenerationCache, LoginError, RecordedUses, RefreshError, SessionService,
};
pub use use_cases::{
    EventUseCases, OrderUseCases, PaymentUseCases, ProductUseCases, SessionUseCases, UserUseCases, WebhookUseCases,
};
#[cfg(any(test, feature = "mocks"))]
pub use use_cases::{
    MockEventUseCases, MockOrderUseCases, MockPaymentUseCases, MockProductUseCases, MockSessionUseCases,
    MockUserUseCases, MockWebhookUseCases,
};
pub use users::{GetUserError, ListUsersError, RegisterError, UpdateUserError, UserChanges, UserService};
pub use webhooks::{
    DeliveryVerdict, DispatchRound, EndpointChanges, EndpointDraft, WebhookError, WebhookPolicy, WebhookService,
};
