//! The rules of `ProductService`, checked through a mocked `ProductRepository`. A mock method
//! without an expectation panics when called, so "the store is not touched" holds by omission;
//! where it is the point of a test it is spelled out with `.never()`.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use mockall::predicate::eq;
use uuid::Uuid;

use super::*;
use crate::actor::Actor;
use crate::pagination::{PageLimit, SortDirection};
use crate::ports::MockProductRepository;
use crate::product::ProductCursor;
use crate::product::ProductSortKey;
use crate::services::fixtures::{
    actor, admin, archived_product, customer, delta, description, eur, fixed_clock, now, price, product, product_name,
    reason, sku, stock,
};
use crate::user::UserId;

#[derive(Default)]
struct Ports {
    products: MockProductRepository,
}

impl Ports {
    fn service(self) -> ProductService {
        ProductService::new(Arc::new(self.products), fixed_clock(), eur())
    }

    /// The store finds `found` (by its id) exactly `times` times.
    fn expect_found(&mut self, found: &Product, times: usize) {
        let returned = found.clone();
        self.products
            .expect_find_by_id()
            .with(eq(found.id))
            .times(times)
            .returning(move |_| Ok(Some(returned.clone())));
    }

    /// The store knows no product `id`.
    fn expect_missing(&mut self, id: ProductId) {
        self.products.expect_find_by_id().with(eq(id)).times(1).returning(|_| Ok(None));
    }
}

fn admin_actor() -> Actor {
    actor(&admin())
}

fn customer_actor() -> Actor {
    actor(&customer())
}

fn store_down() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("connection refused"))
}

/// The single violation of an `Invalid` answer, as `(path, code)`.
fn only_violation(violations: &[FieldViolation]) -> (Vec<String>, &'static str) {
    assert_eq!(violations.len(), 1, "{violations:?}");
    (violations[0].path.clone(), violations[0].code)
}

fn at(field: &str, code: &'static str) -> (Vec<String>, &'static str) {
    (vec![field.to_owned()], code)
}

// ---- create ---------------------------------------------------------------------------------

fn draft() -> ProductDraft {
    ProductDraft {
        sku: sku("TEA-42"),
        name: product_name("Green tea"),
        description: Some(description("Sencha, 100 g.")),
        unit_price: price(799),
        initial_stock: 25,
    }
}

/// What the store hands back for a product it has just inserted.
fn inserted(new: &NewProduct) -> Product {
    Product {
        id: new.id,
        sku: new.sku.clone(),
        name: new.name.clone(),
        description: new.description.clone(),
        unit_price: new.unit_price.clone(),
        stock: stock(new.on_hand, 0),
        status: ProductStatus::Active,
        version: 1,
        created_at: new.created_at,
        updated_at: new.created_at,
    }
}

#[test]
fn create_inserts_the_drafted_product_with_a_fresh_id_the_clocks_time_and_a_created_event() {
    let grace = admin();
    let mut ports = Ports::default();
    let admin_id = grace.id;
    ports
        .products
        .expect_insert()
        .withf(move |new, event| {
            let expected_event = DomainEvent::ProductCreated {
                product_id: new.id,
                sku: "TEA-42".to_owned(),
                name: "Green tea".to_owned(),
                unit_price: 799,
                on_hand: 25,
                actor_id: admin_id,
                occurred_at: now(),
            };
            new.id.as_uuid().get_version_num() == 7
                && new.sku == sku("TEA-42")
                && new.name == product_name("Green tea")
                && new.description == Some(description("Sencha, 100 g."))
                && new.unit_price == price(799)
                && new.on_hand == 25
                && new.created_at == now()
                && *event == expected_event
                && event.type_name() == "product.created"
                && event.subject() == ("product", new.id.to_string())
        })
        .times(1)
        .returning(|new, _| Ok(inserted(new)));

    let created = ports.service().create(actor(&grace), draft()).unwrap();

    assert_eq!(created.sku, sku("TEA-42"));
    assert_eq!(created.name, product_name("Green tea"));
    assert_eq!(created.unit_price, price(799));
    assert_eq!(created.stock, stock(25, 0));
    assert_eq!(created.status, ProductStatus::Active);
    assert_eq!(created.created_at, now());
}

#[test]
fn create_without_a_description_or_stock_inserts_none_and_zero() {
    let mut ports = Ports::default();
    ports
        .products
        .expect_insert()
        .withf(|new, event| {
            new.description.is_none()
                && new.on_hand == 0
                && matches!(event, DomainEvent::ProductCreated { on_hand: 0, .. })
        })
        .times(1)
        .returning(|new, _| Ok(inserted(new)));

    let bare = ProductDraft { description: None, initial_stock: 0, ..draft() };
    let created = ports.service().create(admin_actor(), bare).unwrap();

    assert_eq!(created.description, None);
    assert_eq!(created.stock.on_hand(), 0);
}

#[test]
fn every_created_product_gets_its_own_id() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let mut ports = Ports::default();
    let seen = Arc::clone(&ids);
    ports.products.expect_insert().times(2).returning(move |new, _| {
        seen.lock().unwrap().push(new.id);
        Ok(inserted(new))
    });
    let service = ports.service();

    let first = service.create(admin_actor(), draft()).unwrap();
    let second = service.create(admin_actor(), ProductDraft { sku: sku("TEA-43"), ..draft() }).unwrap();

    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids, vec![first.id, second.id]);
    assert_ne!(first.id, second.id);
}

#[test]
fn a_customer_may_not_create_products() {
    let mut ports = Ports::default();
    ports.products.expect_insert().never();

    let result = ports.service().create(customer_actor(), draft());

    assert!(matches!(result, Err(CreateProductError::Forbidden)), "{result:?}");
}

#[test]
fn an_initial_stock_out_of_range_is_invalid_and_inserts_nothing() {
    let mut ports = Ports::default();
    ports.products.expect_insert().never();
    let service = ports.service();

    for initial_stock in [-1, i64::MIN, Stock::MAX_UNITS + 1, i64::MAX] {
        let result = service.create(admin_actor(), ProductDraft { initial_stock, ..draft() });
        match result {
            Err(CreateProductError::Invalid(violations)) => {
                assert_eq!(only_violation(&violations), at("initial_stock", "out_of_range"), "{initial_stock}");
            }
            other => panic!("expected Invalid for {initial_stock}, got {other:?}"),
        }
    }
}

#[test]
fn an_initial_stock_at_the_maximum_is_accepted() {
    let mut ports = Ports::default();
    ports
        .products
        .expect_insert()
        .withf(|new, _| new.on_hand == Stock::MAX_UNITS)
        .times(1)
        .returning(|new, _| Ok(inserted(new)));

    let created = ports.service().create(admin_actor(), ProductDraft { initial_stock: Stock::MAX_UNITS, ..draft() });

    assert_eq!(created.unwrap().stock.on_hand(), Stock::MAX_UNITS);
}

#[test]
fn a_taken_sku_is_reported_as_sku_taken() {
    let mut ports = Ports::default();
    ports.products.expect_insert().times(1).returning(|_, _| Err(InsertProductError::SkuTaken));

    let result = ports.service().create(admin_actor(), draft());

    assert!(matches!(result, Err(CreateProductError::SkuTaken)), "{result:?}");
}

#[test]
fn create_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.products.expect_insert().times(1).returning(|_, _| Err(InsertProductError::Store(store_down())));

    let result = ports.service().create(admin_actor(), draft());

    assert!(matches!(result, Err(CreateProductError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

#[test]
fn the_service_reports_the_deployments_currency() {
    assert_eq!(Ports::default().service().currency(), &eur());
}

// ---- get ------------------------------------------------------------------------------------

#[test]
fn anyone_sees_an_active_product() {
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 3);
    let service = ports.service();

    for caller in [None, Some(customer_actor()), Some(admin_actor())] {
        assert_eq!(service.get(caller, mug.id).unwrap(), mug, "{caller:?}");
    }
}

#[test]
fn an_archived_product_does_not_exist_for_anonymous_callers_and_customers() {
    let mug = archived_product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 2);
    let service = ports.service();

    for caller in [None, Some(customer_actor())] {
        let result = service.get(caller, mug.id);
        assert!(matches!(result, Err(GetProductError::NotFound)), "{caller:?}: {result:?}");
    }
}

#[test]
fn an_admin_sees_an_archived_product() {
    let mug = archived_product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);

    assert_eq!(ports.service().get(Some(admin_actor()), mug.id).unwrap(), mug);
}

#[test]
fn an_unknown_product_is_not_found_for_everyone() {
    let id = ProductId::new();
    let mut ports = Ports::default();
    ports.products.expect_find_by_id().with(eq(id)).times(3).returning(|_| Ok(None));
    let service = ports.service();

    for caller in [None, Some(customer_actor()), Some(admin_actor())] {
        let result = service.get(caller, id);
        assert!(matches!(result, Err(GetProductError::NotFound)), "{caller:?}: {result:?}");
    }
}

#[test]
fn get_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.products.expect_find_by_id().times(1).returning(|_| Err(store_down()));

    let result = ports.service().get(None, ProductId::new());

    assert!(matches!(result, Err(GetProductError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

// ---- list -----------------------------------------------------------------------------------

/// A query using every filter, so tests can check nothing but `status` is rewritten.
fn filtered_query(status: Option<ProductStatus>) -> ProductQuery {
    ProductQuery {
        status,
        name_contains: Some("mug".to_owned()),
        in_stock: true,
        sort: ProductSortKey::Price,
        direction: Some(SortDirection::Descending),
        after: Some(ProductCursor::Price(1250, ProductId::from_uuid(Uuid::from_u128(0x42)))),
        limit: PageLimit::new(5).unwrap(),
    }
}

#[test]
fn non_admins_see_active_products_only_whatever_status_they_leave_out_or_ask_for() {
    for (caller, asked) in [
        (None, None),
        (None, Some(ProductStatus::Active)),
        (Some(customer_actor()), None),
        (Some(customer_actor()), Some(ProductStatus::Active)),
    ] {
        let rows = vec![product()];
        let mut ports = Ports::default();
        let returned = rows.clone();
        ports
            .products
            .expect_list()
            .with(eq(filtered_query(Some(ProductStatus::Active))))
            .times(1)
            .returning(move |_| Ok(returned.clone()));

        let page = ports.service().list(caller, filtered_query(asked)).unwrap();

        assert_eq!(page, Page { items: rows, has_more: false }, "{caller:?} asking for {asked:?}");
    }
}

#[test]
fn non_admins_asking_for_archived_products_get_an_empty_page_without_a_query() {
    for caller in [None, Some(customer_actor())] {
        let mut ports = Ports::default();
        ports.products.expect_list().never();

        let page = ports.service().list(caller, filtered_query(Some(ProductStatus::Archived))).unwrap();

        assert_eq!(page, Page { items: Vec::new(), has_more: false }, "{caller:?}");
        assert_eq!(page.next_after(|last| ProductCursor::of(last, (filtered_query(None)).sort)), None);
    }
}

#[test]
fn admins_status_filter_is_passed_through_as_asked_including_none() {
    for asked in [None, Some(ProductStatus::Active), Some(ProductStatus::Archived)] {
        let rows = vec![archived_product(), product()];
        let mut ports = Ports::default();
        let returned = rows.clone();
        ports.products.expect_list().with(eq(filtered_query(asked))).times(1).returning(move |_| Ok(returned.clone()));

        let page = ports.service().list(Some(admin_actor()), filtered_query(asked)).unwrap();

        assert_eq!(page.items, rows, "{asked:?}");
        assert!(!page.has_more);
    }
}

/// Three products that differ in every sort key.
fn three_products() -> Vec<Product> {
    vec![
        Product {
            name: product_name("Apron"),
            unit_price: price(100),
            created_at: now() - Duration::days(3),
            ..product()
        },
        Product {
            name: product_name("Bowl"),
            unit_price: price(200),
            created_at: now() - Duration::days(2),
            ..product()
        },
        Product {
            name: product_name("Cup"),
            unit_price: price(300),
            created_at: now() - Duration::days(1),
            ..product()
        },
    ]
}

#[test]
fn an_overfetched_row_means_more_and_the_cursor_follows_the_sort_key_of_the_last_item() {
    let rows = three_products();
    let second = &rows[1];
    for (sort, expected) in [
        (ProductSortKey::CreatedAt, ProductCursor::CreatedAt(now() - Duration::days(2), second.id)),
        (ProductSortKey::Name, ProductCursor::Name("Bowl".to_owned(), second.id)),
        (ProductSortKey::Price, ProductCursor::Price(200, second.id)),
    ] {
        let query = ProductQuery { sort, limit: PageLimit::new(2).unwrap(), ..ProductQuery::default() };
        let mut ports = Ports::default();
        let returned = rows.clone();
        ports
            .products
            .expect_list()
            .with(eq(ProductQuery { status: Some(ProductStatus::Active), ..query.clone() }))
            .times(1)
            .returning(move |_| Ok(returned.clone()));

        let page = ports.service().list(None, query.clone()).unwrap();

        assert_eq!(page.items, rows[..2], "{sort:?}");
        assert!(page.has_more, "{sort:?}");
        assert_eq!(page.next_after(|last| ProductCursor::of(last, (query).sort)), Some(expected), "{sort:?}");
    }
}

#[test]
fn the_last_page_has_no_more_and_no_cursor() {
    let rows = three_products();
    let query =
        ProductQuery { sort: ProductSortKey::Name, limit: PageLimit::new(3).unwrap(), ..ProductQuery::default() };
    let mut ports = Ports::default();
    let returned = rows.clone();
    ports.products.expect_list().times(1).returning(move |_| Ok(returned.clone()));

    let page = ports.service().list(Some(admin_actor()), query.clone()).unwrap();

    assert_eq!(page.items, rows);
    assert!(!page.has_more);
    assert_eq!(page.next_after(|last| ProductCursor::of(last, (query).sort)), None);
}

#[test]
fn an_empty_catalogue_is_an_empty_last_page() {
    let mut ports = Ports::default();
    ports.products.expect_list().times(1).returning(|_| Ok(Vec::new()));

    let page = ports.service().list(None, ProductQuery::default()).unwrap();

    assert_eq!(page, Page { items: Vec::new(), has_more: false });
    assert_eq!(page.next_after(|last| ProductCursor::of(last, (ProductQuery::default()).sort)), None);
}

#[test]
fn list_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.products.expect_list().times(1).returning(|_| Err(store_down()));

    let result = ports.service().list(Some(admin_actor()), ProductQuery::default());

    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
}

// ---- update ---------------------------------------------------------------------------------

fn rename_and_reprice() -> ProductUpdate {
    ProductUpdate { name: Some(product_name("Tin mug")), unit_price: Some(price(1400)), ..ProductUpdate::default() }
}

fn updated_event(id: ProductId, by: UserId, fields: Vec<&'static str>, status: Option<ProductStatus>) -> DomainEvent {
    DomainEvent::ProductUpdated { product_id: id, fields, status, actor_id: by, occurred_at: now() }
}

#[test]
fn a_customer_may_not_update_products() {
    let mut ports = Ports::default();
    ports.products.expect_find_by_id().never();
    ports.products.expect_update().never();
    let service = ports.service();

    for update in [rename_and_reprice(), ProductUpdate::default()] {
        let result = service.update(customer_actor(), product().id, update, 2);
        assert!(matches!(result, Err(ChangeProductError::Forbidden)), "{result:?}");
    }
}

#[test]
fn an_empty_update_at_the_current_version_returns_the_product_unchanged() {
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    ports.products.expect_update().never();

    assert_eq!(ports.service().update(admin_actor(), mug.id, ProductUpdate::default(), 2).unwrap(), mug);
}

#[test]
fn an_empty_update_at_a_stale_version_is_a_version_mismatch() {
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 2);
    ports.products.expect_update().never();
    let service = ports.service();

    for stale in [1, 3] {
        let result = service.update(admin_actor(), mug.id, ProductUpdate::default(), stale);
        assert!(matches!(result, Err(ChangeProductError::VersionMismatch)), "{stale}: {result:?}");
    }
}

#[test]
fn an_empty_update_of_a_missing_product_is_not_found() {
    let id = ProductId::new();
    let mut ports = Ports::default();
    ports.expect_missing(id);
    ports.products.expect_update().never();

    let result = ports.service().update(admin_actor(), id, ProductUpdate::default(), 1);

    assert!(matches!(result, Err(ChangeProductError::NotFound)), "{result:?}");
}

#[test]
fn an_update_is_written_at_the_expected_version_with_an_event_naming_the_changed_fields() {
    let grace = admin();
    let mug = product();
    let changed = Product { name: product_name("Tin mug"), unit_price: price(1400), version: 3, ..mug.clone() };
    let mut ports = Ports::default();
    // The version is checked by the store's conditional write, not by reading first.
    ports.products.expect_find_by_id().never();
    let returned = changed.clone();
    ports
        .products
        .expect_update()
        .with(
            eq(mug.id),
            eq(rename_and_reprice()),
            eq(2),
            eq(updated_event(mug.id, grace.id, vec!["name", "unit_price"], None)),
            eq(now()),
        )
        .times(1)
        .returning(move |_, _, _, _, _| Ok(returned.clone()));

    let result = ports.service().update(actor(&grace), mug.id, rename_and_reprice(), 2).unwrap();

    assert_eq!(result, changed);
}

#[test]
fn an_update_setting_the_status_records_it_in_the_event() {
    let grace = admin();
    let mug = product();
    let update =
        ProductUpdate { description: Some(None), status: Some(ProductStatus::Archived), ..ProductUpdate::default() };
    let mut ports = Ports::default();
    let returned = Product { description: None, ..archived_product() };
    ports
        .products
        .expect_update()
        .with(
            eq(mug.id),
            eq(update.clone()),
            eq(2),
            eq(updated_event(mug.id, grace.id, vec!["description", "status"], Some(ProductStatus::Archived))),
            eq(now()),
        )
        .times(1)
        .returning(move |_, _, _, _, _| Ok(returned.clone()));

    let result = ports.service().update(actor(&grace), mug.id, update, 2).unwrap();

    assert_eq!(result.status, ProductStatus::Archived);
    assert_eq!(result.description, None);
}

#[test]
fn the_stores_not_found_and_version_mismatch_are_reported() {
    for expected in ["NotFound", "VersionMismatch"] {
        let mut ports = Ports::default();
        let answer = move || if expected == "NotFound" { UpdateError::NotFound } else { UpdateError::VersionMismatch };
        ports.products.expect_update().times(1).returning(move |_, _, _, _, _| Err(answer()));

        let result = ports.service().update(admin_actor(), ProductId::new(), rename_and_reprice(), 2);

        match (result, expected) {
            (Err(ChangeProductError::NotFound), "NotFound")
            | (Err(ChangeProductError::VersionMismatch), "VersionMismatch") => {}
            (other, _) => panic!("expected {expected}, got {other:?}"),
        }
    }
}

#[test]
fn update_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.products.expect_update().times(1).returning(|_, _, _, _, _| Err(store_down().into()));

    let result = ports.service().update(admin_actor(), ProductId::new(), rename_and_reprice(), 2);

    assert!(matches!(result, Err(ChangeProductError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

// ---- archive --------------------------------------------------------------------------------

#[test]
fn a_customer_may_not_archive_products() {
    let mut ports = Ports::default();
    ports.products.expect_find_by_id().never();
    ports.products.expect_update().never();

    let result = ports.service().archive(customer_actor(), product().id, 2);

    assert!(matches!(result, Err(ChangeProductError::Forbidden)), "{result:?}");
}

#[test]
fn archiving_an_active_product_sets_archived_at_the_expected_version() {
    let grace = admin();
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    let archive = ProductUpdate { status: Some(ProductStatus::Archived), ..ProductUpdate::default() };
    ports
        .products
        .expect_update()
        .with(
            eq(mug.id),
            eq(archive),
            eq(2),
            eq(updated_event(mug.id, grace.id, vec!["status"], Some(ProductStatus::Archived))),
            eq(now()),
        )
        .times(1)
        .returning(|_, _, _, _, _| Ok(archived_product()));

    ports.service().archive(actor(&grace), mug.id, 2).unwrap();
}

#[test]
fn archiving_an_active_product_at_a_stale_version_is_a_version_mismatch() {
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    ports
        .products
        .expect_update()
        .with(eq(mug.id), mockall::predicate::always(), eq(1), mockall::predicate::always(), eq(now()))
        .times(1)
        .returning(|_, _, _, _, _| Err(UpdateError::VersionMismatch));

    let result = ports.service().archive(admin_actor(), mug.id, 1);

    assert!(matches!(result, Err(ChangeProductError::VersionMismatch)), "{result:?}");
}

#[test]
fn archiving_an_archived_product_at_its_version_succeeds_without_writing() {
    let mug = archived_product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    ports.products.expect_update().never();

    ports.service().archive(admin_actor(), mug.id, 3).unwrap();
}

#[test]
fn archiving_an_archived_product_at_another_version_is_a_version_mismatch() {
    let mug = archived_product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 2);
    ports.products.expect_update().never();
    let service = ports.service();

    for stale in [2, 4] {
        let result = service.archive(admin_actor(), mug.id, stale);
        assert!(matches!(result, Err(ChangeProductError::VersionMismatch)), "{stale}: {result:?}");
    }
}

#[test]
fn archiving_a_missing_product_is_not_found() {
    let id = ProductId::new();
    let mut ports = Ports::default();
    ports.expect_missing(id);
    ports.products.expect_update().never();

    let result = ports.service().archive(admin_actor(), id, 1);

    assert!(matches!(result, Err(ChangeProductError::NotFound)), "{result:?}");
}

#[test]
fn archiving_a_product_deleted_after_the_read_is_not_found() {
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    ports.products.expect_update().times(1).returning(|_, _, _, _, _| Err(UpdateError::NotFound));

    let result = ports.service().archive(admin_actor(), mug.id, 2);

    assert!(matches!(result, Err(ChangeProductError::NotFound)), "{result:?}");
}

#[test]
fn archive_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.products.expect_find_by_id().times(1).returning(|_| Err(store_down()));
    ports.products.expect_update().never();

    let result = ports.service().archive(admin_actor(), ProductId::new(), 2);

    assert!(matches!(result, Err(ChangeProductError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

// ---- adjust_stock ---------------------------------------------------------------------------

/// The audit entry the store records for `units` added to `product` by `by`.
fn adjustment(product: &Product, units: i64, by: UserId) -> StockAdjustment {
    StockAdjustment {
        id: Uuid::now_v7(),
        product_id: product.id,
        delta: units,
        reason: reason("stocktake"),
        actor_id: by,
        on_hand_after: product.stock.on_hand() + units,
        created_at: now(),
    }
}

fn below_reserved(error: AdjustStockError) -> (i64, i64, i64) {
    match error {
        AdjustStockError::BelowReserved { on_hand, reserved, delta } => (on_hand, reserved, delta),
        other => panic!("expected BelowReserved, got {other:?}"),
    }
}

#[test]
fn a_customer_may_not_adjust_stock() {
    let mut ports = Ports::default();
    ports.products.expect_find_by_id().never();
    ports.products.expect_adjust_stock().never();

    let result = ports.service().adjust_stock(customer_actor(), product().id, delta(5), reason("stocktake"));

    assert!(matches!(result, Err(AdjustStockError::Forbidden)), "{result:?}");
}

#[test]
fn adjusting_a_missing_product_is_not_found() {
    let id = ProductId::new();
    let mut ports = Ports::default();
    ports.expect_missing(id);
    ports.products.expect_adjust_stock().never();

    let result = ports.service().adjust_stock(admin_actor(), id, delta(5), reason("stocktake"));

    assert!(matches!(result, Err(AdjustStockError::NotFound)), "{result:?}");
}

#[test]
fn an_adjustment_records_who_when_how_much_and_why_and_returns_the_new_stock() {
    let grace = admin();
    let mug = product();
    let entry = adjustment(&mug, -6, grace.id);
    let after = Product { stock: stock(4, 4), version: 3, ..mug.clone() };
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    let answer = (entry.clone(), after.clone());
    ports
        .products
        .expect_adjust_stock()
        .with(eq(mug.id), eq(delta(-6)), eq(reason("stocktake")), eq(grace.id), eq(now()))
        .times(1)
        .returning(move |_, _, _, _, _| Ok(answer.clone()));

    // Down to exactly the reserved units: allowed.
    let (recorded, product) =
        ports.service().adjust_stock(actor(&grace), mug.id, delta(-6), reason("stocktake")).unwrap();

    assert_eq!(recorded, entry);
    assert_eq!(product, after);
    assert_eq!(product.stock.available(), 0);
}

#[test]
fn a_delta_taking_on_hand_below_reserved_is_refused_before_the_store_is_asked() {
    // product(): 10 on hand, 4 reserved.
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 4);
    ports.products.expect_adjust_stock().never();
    let service = ports.service();

    for units in [-7, -10, -11, -Stock::MAX_UNITS] {
        let error = service.adjust_stock(admin_actor(), mug.id, delta(units), reason("breakage")).unwrap_err();
        assert_eq!(below_reserved(error), (10, 4, units));
    }
}

#[test]
fn with_nothing_reserved_on_hand_still_cannot_go_negative() {
    let mug = Product { stock: stock(10, 0), ..product() };
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    ports.products.expect_adjust_stock().never();

    let error = ports.service().adjust_stock(admin_actor(), mug.id, delta(-11), reason("breakage")).unwrap_err();

    assert_eq!(below_reserved(error), (10, 0, -11));
}

#[test]
fn a_delta_taking_on_hand_above_the_maximum_is_invalid() {
    let mug = Product { stock: stock(Stock::MAX_UNITS - 5, 0), ..product() };
    let mut ports = Ports::default();
    ports.expect_found(&mug, 2);
    ports.products.expect_adjust_stock().never();
    let service = ports.service();

    for units in [6, Stock::MAX_UNITS] {
        match service.adjust_stock(admin_actor(), mug.id, delta(units), reason("delivery")) {
            Err(AdjustStockError::Invalid(violations)) => {
                assert_eq!(only_violation(&violations), at("delta", "out_of_range"), "{units}");
            }
            other => panic!("expected Invalid for {units}, got {other:?}"),
        }
    }
}

#[test]
fn a_delta_reaching_exactly_the_maximum_is_accepted() {
    let grace = admin();
    let mug = Product { stock: stock(Stock::MAX_UNITS - 5, 0), ..product() };
    let entry = adjustment(&mug, 5, grace.id);
    let after = Product { stock: stock(Stock::MAX_UNITS, 0), ..mug.clone() };
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    let answer = (entry.clone(), after.clone());
    ports.products.expect_adjust_stock().times(1).returning(move |_, _, _, _, _| Ok(answer.clone()));

    let (_, product) = ports.service().adjust_stock(actor(&grace), mug.id, delta(5), reason("delivery")).unwrap();

    assert_eq!(product.stock.on_hand(), Stock::MAX_UNITS);
}

#[test]
fn losing_a_race_to_a_reservation_reports_the_stores_numbers() {
    // Read: 10 on hand, 4 reserved, so -5 looks fine; meanwhile an order reserved 4 more.
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    ports
        .products
        .expect_adjust_stock()
        .with(eq(mug.id), eq(delta(-5)), eq(reason("breakage")), mockall::predicate::always(), eq(now()))
        .times(1)
        .returning(|_, _, _, _, _| Err(StockAdjustmentError::BelowReserved { on_hand: 10, reserved: 8 }));

    let error = ports.service().adjust_stock(admin_actor(), mug.id, delta(-5), reason("breakage")).unwrap_err();

    assert_eq!(below_reserved(error), (10, 8, -5));
}

#[test]
fn a_product_deleted_between_read_and_adjustment_is_not_found() {
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    ports.products.expect_adjust_stock().times(1).returning(|_, _, _, _, _| Err(StockAdjustmentError::NotFound));

    let result = ports.service().adjust_stock(admin_actor(), mug.id, delta(1), reason("found one"));

    assert!(matches!(result, Err(AdjustStockError::NotFound)), "{result:?}");
}

#[test]
fn adjust_stock_passes_store_failures_through() {
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    ports.products.expect_adjust_stock().times(1).returning(|_, _, _, _, _| Err(store_down().into()));

    let result = ports.service().adjust_stock(admin_actor(), mug.id, delta(1), reason("found one"));
    assert!(matches!(result, Err(AdjustStockError::Store(StoreError::Unavailable(_)))), "{result:?}");

    let mut ports = Ports::default();
    ports.products.expect_find_by_id().times(1).returning(|_| Err(store_down()));
    ports.products.expect_adjust_stock().never();

    let result = ports.service().adjust_stock(admin_actor(), mug.id, delta(1), reason("found one"));
    assert!(matches!(result, Err(AdjustStockError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

// ---- list_adjustments -----------------------------------------------------------------------

#[test]
fn a_customer_may_not_read_the_audit_trail() {
    let mut ports = Ports::default();
    ports.products.expect_find_by_id().never();
    ports.products.expect_list_adjustments().never();

    let result = ports.service().list_adjustments(customer_actor(), product().id, &AdjustmentQuery::default());

    assert!(matches!(result, Err(ListAdjustmentsError::Forbidden)), "{result:?}");
}

#[test]
fn the_audit_trail_of_a_missing_product_is_not_found() {
    let id = ProductId::new();
    let mut ports = Ports::default();
    ports.expect_missing(id);
    ports.products.expect_list_adjustments().never();

    let result = ports.service().list_adjustments(admin_actor(), id, &AdjustmentQuery::default());

    assert!(matches!(result, Err(ListAdjustmentsError::NotFound)), "{result:?}");
}

#[test]
fn the_audit_trail_is_paged_from_the_overfetched_rows() {
    let grace = admin();
    // Archived products keep their trail, and admins may read it.
    let mug = archived_product();
    let rows = vec![adjustment(&mug, -1, grace.id), adjustment(&mug, 2, grace.id), adjustment(&mug, 3, grace.id)];
    let query = AdjustmentQuery { after: Some(Uuid::now_v7()), limit: PageLimit::new(2).unwrap() };
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    let returned = rows.clone();
    ports
        .products
        .expect_list_adjustments()
        .with(eq(mug.id), eq(query.clone()))
        .times(1)
        .returning(move |_, _| Ok(returned.clone()));

    let page = ports.service().list_adjustments(actor(&grace), mug.id, &query).unwrap();

    assert_eq!(page.items, rows[..2]);
    assert!(page.has_more);
}

#[test]
fn the_last_page_of_the_audit_trail_has_no_more() {
    let mug = product();
    let rows = vec![adjustment(&mug, 4, admin().id)];
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    let returned = rows.clone();
    ports.products.expect_list_adjustments().times(1).returning(move |_, _| Ok(returned.clone()));

    let page = ports.service().list_adjustments(admin_actor(), mug.id, &AdjustmentQuery::default()).unwrap();

    assert_eq!(page, Page { items: rows, has_more: false });
}

#[test]
fn list_adjustments_passes_store_failures_through() {
    let mug = product();
    let mut ports = Ports::default();
    ports.expect_found(&mug, 1);
    ports.products.expect_list_adjustments().times(1).returning(|_, _| Err(store_down()));

    let result = ports.service().list_adjustments(admin_actor(), mug.id, &AdjustmentQuery::default());

    assert!(matches!(result, Err(ListAdjustmentsError::Store(StoreError::Unavailable(_)))), "{result:?}");
}
