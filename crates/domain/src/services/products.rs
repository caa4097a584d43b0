//! The catalogue's use cases (docs/api.md#products-and-stock): anyone reads active products; admins also see archived
//! ones and are the only ones who create, edit, archive and adjust stock.

use std::sync::Arc;

use crate::actor::Actor;
use crate::authorisation::Operation;
use crate::error::StoreError;
use crate::event::DomainEvent;
use crate::pagination::Page;
use crate::ports::{Clock, InsertProductError, ProductRepository, Repositories, StockAdjustmentError, UpdateError};
use crate::product::{
    AdjustmentQuery, AdjustmentReason, Currency, Description, Money, NewProduct, Product, ProductId, ProductName,
    ProductQuery, ProductStatus, ProductUpdate, Sku, Stock, StockAdjustment, StockDelta, StockError,
};
use crate::services::ProductUseCases;
use crate::validation::FieldViolation;

/// A product to create, already shape-checked by the inbound adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDraft {
    pub sku: Sku,
    pub name: ProductName,
    pub description: Option<Description>,
    pub unit_price: Money,
    pub initial_stock: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateProductError {
    #[error("only admins may create products")]
    Forbidden,
    #[error("the SKU is already in use")]
    SkuTaken,
    #[error("invalid fields")]
    Invalid(Vec<FieldViolation>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum GetProductError {
    /// No such product, or an archived one the caller may not see.
    #[error("product not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeProductError {
    #[error("only admins may change products")]
    Forbidden,
    #[error("product not found")]
    NotFound,
    #[error("the product has changed since it was read")]
    VersionMismatch,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum AdjustStockError {
    #[error("only admins may adjust stock")]
    Forbidden,
    #[error("product not found")]
    NotFound,
    /// The adjustment would leave fewer units on hand than are reserved.
    #[error("on hand would fall below reserved")]
    BelowReserved { on_hand: i64, reserved: i64, delta: i64 },
    #[error("invalid fields")]
    Invalid(Vec<FieldViolation>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ListAdjustmentsError {
    #[error("only admins may read the stock audit trail")]
    Forbidden,
    #[error("product not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct ProductService {
    products: Arc<dyn ProductRepository>,
    clock: Arc<dyn Clock>,
    currency: Currency,
}

impl ProductService {
    pub fn new(products: Arc<dyn ProductRepository>, clock: Arc<dyn Clock>, currency: Currency) -> Self {
        Self { products, clock, currency }
    }

    /// This service with its repository bound to a unit of work (see [`Repositories`]).
    pub fn within(&self, repositories: &Repositories) -> Self {
        Self { products: repositories.products.clone(), ..self.clone() }
    }

    /// The deployment's currency: every price must be in it.
    pub fn currency(&self) -> &Currency {
        &self.currency
    }
}

impl ProductUseCases for ProductService {
    fn within(&self, repositories: &Repositories) -> Box<dyn ProductUseCases> {
        Box::new(Self::within(self, repositories))
    }

    fn create(&self, actor: Actor, draft: ProductDraft) -> Result<Product, CreateProductError> {
        if !actor.may(Operation::CreateProduct) {
            return Err(CreateProductError::Forbidden);
        }
        if let Err(error) = Stock::new(draft.initial_stock, 0) {
            let message = match error {
                StockError::OutOfRange => format!("must be between 0 and {}", Stock::MAX_UNITS),
                // Unreachable with nothing reserved; kept exhaustive so a new rule is not missed.
                StockError::BelowReserved { .. } => "must not be negative".to_owned(),
            };
            return Err(CreateProductError::Invalid(vec![FieldViolation::new(
                "initial_stock",
                "out_of_range",
                message,
            )]));
        }
        let now = self.clock.now();
        let product = NewProduct {
            id: ProductId::new(),
            sku: draft.sku,
            name: draft.name,
            description: draft.description,
            unit_price: draft.unit_price,
            on_hand: draft.initial_stock,
            created_at: now,
        };
        let event = DomainEvent::ProductCreated {
            product_id: product.id,
            sku: product.sku.as_str().to_owned(),
            name: product.name.as_str().to_owned(),
            unit_price: product.unit_price.amount(),
            on_hand: product.on_hand,
            actor_id: actor.user_id,
            occurred_at: now,
        };
        self.products.insert(&product, &event).map_err(|error| match error {
            InsertProductError::SkuTaken => CreateProductError::SkuTaken,
            InsertProductError::Store(store) => CreateProductError::Store(store),
        })
    }

    /// One product. Archived products exist only for admins.
    fn get(&self, actor: Option<Actor>, id: ProductId) -> Result<Product, GetProductError> {
        let product = self.products.find_by_id(id)?.ok_or(GetProductError::NotFound)?;
        if product.status == ProductStatus::Archived && !is_admin(actor) {
            return Err(GetProductError::NotFound);
        }
        Ok(product)
    }

    /// A page of the catalogue. Non-admins see active products only, whatever they ask for:
    /// asking for archived ones yields an empty page, as if there were none.
    fn list(&self, actor: Option<Actor>, mut query: ProductQuery) -> Result<Page<Product>, StoreError> {
        if !is_admin(actor) {
            if query.status == Some(ProductStatus::Archived) {
                return Ok(Page { items: Vec::new(), has_more: false });
            }
            query.status = Some(ProductStatus::Active);
        }
        let rows = self.products.list(&query)?;
        Ok(Page::from_overfetched(rows, query.limit))
    }

    /// Applies a merge-patch if the product is still at `expected_version`.
    fn update(
        &self,
        actor: Actor,
        id: ProductId,
        update: ProductUpdate,
        expected_version: i64,
    ) -> Result<Product, ChangeProductError> {
        if !actor.may(Operation::ChangeProduct) {
            return Err(ChangeProductError::Forbidden);
        }
        if update.is_empty() {
            let product = self.products.find_by_id(id)?.ok_or(ChangeProductError::NotFound)?;
            return if product.version == expected_version {
                Ok(product)
            } else {
                Err(ChangeProductError::VersionMismatch)
            };
        }
        let now = self.clock.now();
        let event = DomainEvent::ProductUpdated {
            product_id: id,
            fields: update.changed_fields(),
            status: update.status,
            actor_id: actor.user_id,
            occurred_at: now,
        };
        Ok(self.products.update(id, &update, expected_version, &event, now)?)
    }

    /// `DELETE`: archives the product (orders keep their snapshot). Archiving an archived
    /// product at the current version changes nothing and succeeds.
    fn archive(&self, actor: Actor, id: ProductId, expected_version: i64) -> Result<(), ChangeProductError> {
        if !actor.may(Operation::ArchiveProduct) {
            return Err(ChangeProductError::Forbidden);
        }
        let current = self.products.find_by_id(id)?.ok_or(ChangeProductError::NotFound)?;
        if current.status == ProductStatus::Archived {
            return if current.version == expected_version { Ok(()) } else { Err(ChangeProductError::VersionMismatch) };
        }
        let update = ProductUpdate { status: Some(ProductStatus::Archived), ..ProductUpdate::default() };
        self.update(actor, id, update, expected_version).map(|_| ())
    }

    /// Records a stock change. The rule "on_hand never below reserved" is checked here for a
    /// precise answer, and again atomically by the store, which is what holds under concurrency.
    fn adjust_stock(
        &self,
        actor: Actor,
        id: ProductId,
        delta: StockDelta,
        reason: AdjustmentReason,
    ) -> Result<(StockAdjustment, Product), AdjustStockError> {
        if !actor.may(Operation::AdjustStock) {
            return Err(AdjustStockError::Forbidden);
        }
        let product = self.products.find_by_id(id)?.ok_or(AdjustStockError::NotFound)?;
        let below = |stock: Stock| AdjustStockError::BelowReserved {
            on_hand: stock.on_hand(),
            reserved: stock.reserved(),
            delta: delta.get(),
        };
        match product.stock.adjusted(delta.get()) {
            Ok(_) => {}
            Err(StockError::BelowReserved { .. }) => return Err(below(product.stock)),
            Err(StockError::OutOfRange) if product.stock.on_hand() + delta.get() < 0 => {
                return Err(below(product.stock));
            }
            Err(StockError::OutOfRange) => {
                return Err(AdjustStockError::Invalid(vec![FieldViolation::new(
                    "delta",
                    "out_of_range",
                    format!("would take on_hand above {}", Stock::MAX_UNITS),
                )]));
            }
        }
        self.products.adjust_stock(id, delta, &reason, actor.user_id, self.clock.now()).map_err(|error| match error {
            StockAdjustmentError::NotFound => AdjustStockError::NotFound,
            StockAdjustmentError::BelowReserved { on_hand, reserved } => {
                AdjustStockError::BelowReserved { on_hand, reserved, delta: delta.get() }
            }
            StockAdjustmentError::Store(error) => AdjustStockError::Store(error),
        })
    }

    /// The audit trail of one product, newest first.
    fn list_adjustments(
        &self,
        actor: Actor,
        id: ProductId,
        query: &AdjustmentQuery,
    ) -> Result<Page<StockAdjustment>, ListAdjustmentsError> {
        if !actor.may(Operation::ReadStockAdjustments) {
            return Err(ListAdjustmentsError::Forbidden);
        }
        if self.products.find_by_id(id)?.is_none() {
            return Err(ListAdjustmentsError::NotFound);
        }
        let rows = self.products.list_adjustments(id, query)?;
        Ok(Page::from_overfetched(rows, query.limit))
    }
}

impl From<UpdateError> for ChangeProductError {
    fn from(error: UpdateError) -> Self {
        match error {
            UpdateError::NotFound => Self::NotFound,
            UpdateError::VersionMismatch => Self::VersionMismatch,
            UpdateError::Store(error) => Self::Store(error),
        }
    }
}

fn is_admin(actor: Option<Actor>) -> bool {
    actor.is_some_and(|actor| actor.is_admin())
}

#[cfg(test)]
mod tests;
