use std::collections::HashSet;
use std::sync::Barrier;

use orderly_domain::StoreError;
use orderly_domain::pagination::{Page, PageLimit, SortDirection};
use orderly_domain::ports::{InsertProductError, ProductRepository, StockAdjustmentError, UpdateError};
use orderly_domain::product::{
    AdjustmentQuery, AdjustmentReason, Description, Product, ProductCursor, ProductId, ProductName, ProductQuery,
    ProductSortKey, ProductStatus, ProductUpdate, StockAdjustment, StockDelta,
};
use orderly_domain::user::UserId;
use orderly_persistence::INITIAL_STOCK_REASON;
use orderly_persistence::testing::{Backend, TestDatabase};
use uuid::Uuid;

use crate::fixtures::{at, insert_admin, insert_product, new_product, price, product_created, products};

const SORTS: [ProductSortKey; 3] = [ProductSortKey::CreatedAt, ProductSortKey::Name, ProductSortKey::Price];
const DIRECTIONS: [Option<SortDirection>; 3] = [None, Some(SortDirection::Ascending), Some(SortDirection::Descending)];

orderly_persistence::backend_tests! {
    fn inserted_products_are_found_by_id(db: &TestDatabase) {
        let repo = products(db);
        let new = new_product("Enamel mug", 1999, 12, at(0) + chrono::Duration::nanoseconds(123_456_789));
        let (inserted, _) = insert_product(db, &new);
        assert_eq!(inserted.id, new.id);
        assert_eq!(inserted.sku, new.sku);
        assert_eq!(inserted.name.as_str(), "Enamel mug");
        assert_eq!(inserted.description, new.description);
        assert_eq!(inserted.unit_price, price(1999));
        assert_eq!((inserted.stock.on_hand(), inserted.stock.reserved(), inserted.stock.available()), (12, 0, 12));
        assert_eq!(inserted.status, ProductStatus::Active);
        assert_eq!(inserted.version, 1);
        // Microseconds are what both databases keep; the returned product says what was stored.
        assert_eq!(inserted.created_at, at(0) + chrono::Duration::microseconds(123_456));
        assert_eq!(inserted.updated_at, inserted.created_at);
        assert_eq!(repo.find_by_id(new.id).unwrap(), Some(inserted));

        let mut plain = new_product("No description", 0, 0, at(1));
        plain.description = None;
        let (inserted, _) = insert_product(db, &plain);
        assert_eq!(inserted.description, None);
        assert_eq!(repo.find_by_id(plain.id).unwrap(), Some(inserted));
        assert_eq!(repo.find_by_id(ProductId::new()).unwrap(), None);
    }

    fn the_creation_event_is_written_with_the_product(db: &TestDatabase) {
        let new = new_product("Mug", 1999, 0, at(5));
        let (_, admin) = insert_product(db, &new);
        let event = db.recorded_events().into_iter().find(|event| event.event_type == "product.created").unwrap();
        assert_eq!(event.subject_type, "product");
        assert_eq!(event.subject_id, new.id.to_string());
        assert_eq!(event.occurred_at, at(5));
        assert_eq!(
            event.data,
            serde_json::json!({
                "product_id": new.id.to_string(),
                "sku": new.sku.as_str(),
                "name": "Mug",
                "unit_price": 1999,
                "on_hand": 0,
                "actor_id": admin.to_string(),
            })
        );
    }

    fn a_taken_sku_is_sku_taken_and_writes_nothing(db: &TestDatabase) {
        let repo = products(db);
        let first = new_product("Mug", 1999, 5, at(0));
        let (_, admin) = insert_product(db, &first);
        let events_before = db.recorded_events();

        let mut second = new_product("Other mug", 999, 7, at(1));
        second.sku = first.sku.clone();
        let error = repo.insert(&second, &product_created(&second, admin)).unwrap_err();
        assert!(matches!(error, InsertProductError::SkuTaken), "{error:?}");
        assert_eq!(repo.find_by_id(second.id).unwrap(), None);
        // The failed insert's event and initial-stock adjustment were rolled back with it.
        assert_eq!(db.recorded_events(), events_before);
        assert!(trail(&repo, second.id).is_empty());
        assert_eq!(trail(&repo, first.id).len(), 1);
        // The connection is still usable after the failed transaction.
        assert!(repo.find_by_id(first.id).unwrap().is_some());
    }

    fn initial_stock_is_recorded_as_an_adjustment_by_the_creating_admin(db: &TestDatabase) {
        let repo = products(db);
        let stocked = new_product("Stocked", 100, 25, at(3));
        let (_, admin) = insert_product(db, &stocked);
        let adjustments = trail(&repo, stocked.id);
        assert_eq!(adjustments.len(), 1);
        let initial = &adjustments[0];
        assert_eq!(initial.product_id, stocked.id);
        assert_eq!((initial.delta, initial.on_hand_after), (25, 25));
        assert_eq!(initial.reason.as_str(), INITIAL_STOCK_REASON);
        assert_eq!(initial.actor_id, admin);
        assert_eq!(initial.created_at, at(3));
        assert_eq!(initial.id.get_version_num(), 7);
        // The product.created event already says how much stock there is: no stock.adjusted.
        assert!(db.recorded_events().iter().all(|event| event.event_type != "stock.adjusted"));

        let empty = new_product("Empty", 100, 0, at(4));
        insert_product(db, &empty);
        assert!(trail(&repo, empty.id).is_empty());
    }

    fn initial_stock_without_a_creation_event_is_refused(db: &TestDatabase) {
        let repo = products(db);
        let new = new_product("Stocked", 100, 3, at(0));
        let wrong = orderly_domain::event::DomainEvent::ProductUpdated {
            product_id: new.id,
            fields: vec![],
            status: None,
            actor_id: insert_admin(db),
            occurred_at: at(0),
        };
        let error = repo.insert(&new, &wrong).unwrap_err();
        assert!(matches!(error, InsertProductError::Store(StoreError::Unexpected(_))), "{error:?}");
        assert_eq!(repo.find_by_id(new.id).unwrap(), None);
    }

    fn update_at_the_current_version_changes_the_fields_bumps_the_version_and_records_an_event(db: &TestDatabase) {
        let repo = products(db);
        let (product, admin) = insert_product(db, &new_product("Mug", 1999, 4, at(0)));
        let update = ProductUpdate {
            name: Some(ProductName::parse("Big mug").unwrap()),
            unit_price: Some(price(2499)),
            ..ProductUpdate::default()
        };
        let Ok(updated) = repo.update(product.id, &update, 1, &updated_event(&product, &update, admin), at(60)) else {
            panic!("expected Updated");
        };
        assert_eq!(updated.name.as_str(), "Big mug");
        assert_eq!(updated.unit_price, price(2499));
        assert_eq!(updated.version, 2);
        assert_eq!(updated.updated_at, at(60));
        assert_eq!((updated.created_at, updated.sku.clone(), updated.stock), (product.created_at, product.sku.clone(), product.stock));
        assert_eq!((updated.description.clone(), updated.status), (product.description.clone(), ProductStatus::Active));
        assert_eq!(repo.find_by_id(product.id).unwrap(), Some(updated));

        let archive = ProductUpdate { status: Some(ProductStatus::Archived), ..ProductUpdate::default() };
        let Ok(archived) = repo.update(product.id, &archive, 2, &updated_event(&product, &archive, admin), at(120)) else {
            panic!("expected Updated");
        };
        assert_eq!((archived.status, archived.version, archived.name.as_str()), (ProductStatus::Archived, 3, "Big mug"));

        let events: Vec<_> = db.recorded_events().into_iter().filter(|event| event.event_type == "product.updated").collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].subject_id, product.id.to_string());
        assert_eq!(
            events[0].data,
            serde_json::json!({"product_id": product.id.to_string(), "fields": ["name", "unit_price"], "actor_id": admin.to_string()})
        );
        assert_eq!(events[1].data["status"], "archived");
    }

    fn a_stale_version_is_a_mismatch_and_changes_nothing(db: &TestDatabase) {
        let repo = products(db);
        let (product, admin) = insert_product(db, &new_product("Mug", 1999, 0, at(0)));
        let events_before = db.recorded_events();
        let update = ProductUpdate { name: Some(ProductName::parse("Renamed").unwrap()), ..ProductUpdate::default() };
        let event = updated_event(&product, &update, admin);
        assert!(matches!(repo.update(product.id, &update, 2, &event, at(60)), Err(UpdateError::VersionMismatch)));
        assert!(matches!(repo.update(product.id, &update, 0, &event, at(60)), Err(UpdateError::VersionMismatch)));
        assert_eq!(repo.find_by_id(product.id).unwrap(), Some(product));
        assert_eq!(db.recorded_events(), events_before);
    }

    fn updating_a_missing_product_is_not_found(db: &TestDatabase) {
        let repo = products(db);
        let (product, admin) = insert_product(db, &new_product("Mug", 1999, 0, at(0)));
        let events_before = db.recorded_events();
        let update = ProductUpdate { status: Some(ProductStatus::Archived), ..ProductUpdate::default() };
        let event = updated_event(&product, &update, admin);
        assert!(matches!(repo.update(ProductId::new(), &update, 1, &event, at(1)), Err(UpdateError::NotFound)));
        assert_eq!(db.recorded_events(), events_before);
    }

    fn racing_updates_of_one_version_let_exactly_one_win(db: &TestDatabase) {
        let (product, admin) = insert_product(db, &new_product("Mug", 1999, 0, at(0)));
        let barrier = Barrier::new(8);
        let outcomes: Vec<Result<Product, UpdateError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (repo, barrier, product) = (products(db), &barrier, &product);
                    scope.spawn(move || {
                        let update = ProductUpdate { unit_price: Some(price(100 + i)), ..ProductUpdate::default() };
                        let event = updated_event(product, &update, admin);
                        barrier.wait();
                        repo.update(product.id, &update, 1, &event, at(60))
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        let winners: Vec<&Product> =
            outcomes.iter().filter_map(|outcome| outcome.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        assert_eq!(outcomes.iter().filter(|outcome| matches!(outcome, Err(UpdateError::VersionMismatch))).count(), 7);
        assert_eq!(products(db).find_by_id(product.id).unwrap().unwrap(), *winners[0]);
        assert_eq!(db.recorded_events().iter().filter(|event| event.event_type == "product.updated").count(), 1);
    }

    fn a_description_is_cleared_by_some_none_and_kept_by_none(db: &TestDatabase) {
        let repo = products(db);
        let (product, admin) = insert_product(db, &new_product("Mug", 1999, 0, at(0)));
        assert!(product.description.is_some());

        let rename = ProductUpdate { name: Some(ProductName::parse("Cup").unwrap()), ..ProductUpdate::default() };
        let Ok(renamed) = repo.update(product.id, &rename, 1, &updated_event(&product, &rename, admin), at(1)) else {
            panic!("expected Updated");
        };
        assert_eq!(renamed.description, product.description, "None leaves the description alone");

        let clear = ProductUpdate { description: Some(None), ..ProductUpdate::default() };
        let Ok(cleared) = repo.update(product.id, &clear, 2, &updated_event(&product, &clear, admin), at(2)) else {
            panic!("expected Updated");
        };
        assert_eq!(cleared.description, None);
        assert_eq!(repo.find_by_id(product.id).unwrap().unwrap().description, None);

        let set = ProductUpdate { description: Some(Some(Description::parse("Back again").unwrap())), ..ProductUpdate::default() };
        let Ok(set) = repo.update(product.id, &set, 3, &updated_event(&product, &set, admin), at(3)) else {
            panic!("expected Updated");
        };
        assert_eq!(set.description.as_ref().map(Description::as_str), Some("Back again"));
    }

    fn renaming_changes_what_the_name_filter_matches(db: &TestDatabase) {
        let repo = products(db);
        let (product, admin) = insert_product(db, &new_product("Enamel Mug", 1999, 0, at(0)));
        let matching = |needle: &str| -> Vec<ProductId> {
            let query = ProductQuery { name_contains: Some(needle.to_owned()), ..ProductQuery::default() };
            repo.list(&query).unwrap().into_iter().map(|product| product.id).collect()
        };
        assert_eq!(matching("MUG"), vec![product.id]);
        assert!(matching("TEAPOT").is_empty());

        let rename = ProductUpdate { name: Some(ProductName::parse("Ceramic Teapot").unwrap()), ..ProductUpdate::default() };
        repo.update(product.id, &rename, 1, &updated_event(&product, &rename, admin), at(1)).unwrap();
        assert!(matching("mug").is_empty());
        assert_eq!(matching("teaPOT"), vec![product.id]);
    }

    fn the_name_filter_is_case_insensitive_and_takes_wildcards_literally(db: &TestDatabase) {
        let repo = products(db);
        let names = ["50% off", "500 off", "a_b", "axb", "back\\slash", "backslash", "ÄPFEL", "äpfel", "Apfel", "ΟΔΟΣ"];
        let ids: Vec<ProductId> = names.iter().map(|name| insert_product(db, &new_product(name, 100, 0, at(0))).0.id).collect();
        let matching = |needle: &str| -> HashSet<ProductId> {
            let query = ProductQuery { name_contains: Some(needle.to_owned()), limit: PageLimit::new(100).unwrap(), ..ProductQuery::default() };
            repo.list(&query).unwrap().into_iter().map(|product| product.id).collect()
        };
        let named = |wanted: &[&str]| -> HashSet<ProductId> {
            names.iter().zip(&ids).filter(|(name, _)| wanted.contains(name)).map(|(_, id)| *id).collect()
        };
        assert_eq!(matching("%"), named(&["50% off"]));
        assert_eq!(matching("0%"), named(&["50% off"]));
        assert_eq!(matching("_"), named(&["a_b"]));
        assert_eq!(matching("\\"), named(&["back\\slash"]));
        assert_eq!(matching("K\\S"), named(&["back\\slash"]));
        assert_eq!(matching("äpf"), named(&["ÄPFEL", "äpfel"]));
        assert_eq!(matching("APF"), named(&["Apfel"]));
        assert_eq!(matching("οσ"), named(&["ΟΔΟΣ"]));
        assert_eq!(matching("σ"), named(&["ΟΔΟΣ"]));
        assert_eq!(matching(""), names.iter().zip(&ids).map(|(_, id)| *id).collect());
        assert!(matching("nothing like it").is_empty());
        // PostgreSQL refuses NUL in text; no name can hold one, so it matches nothing anywhere.
        assert!(matching("a\0b").is_empty());
    }

    fn names_sort_bytewise_on_every_backend(db: &TestDatabase) {
        let repo = products(db);
        for name in ["éclair", "apple", "Zebra", "Äpfel", "Apple", "zebra", "Ångström", "50% off"] {
            insert_product(db, &new_product(name, 100, 0, at(0)));
        }
        let listed = |direction| -> Vec<String> {
            let query = ProductQuery { sort: ProductSortKey::Name, direction, limit: PageLimit::new(100).unwrap(), ..ProductQuery::default() };
            repo.list(&query).unwrap().into_iter().map(|product| product.name.as_str().to_owned()).collect()
        };
        // Byte order of UTF-8, whatever the database's locale: upper case before lower case,
        // and every non-ASCII letter after ASCII.
        let expected = ["50% off", "Apple", "Zebra", "apple", "zebra", "Äpfel", "Ångström", "éclair"];
        assert_eq!(listed(None), expected);
        let mut reversed = expected;
        reversed.reverse();
        assert_eq!(listed(Some(SortDirection::Descending)), reversed);
    }

    fn listing_walks_every_row_exactly_once_for_every_sort_direction_and_filter(db: &TestDatabase) {
        let all = seed_catalogue(db);
        let repo = products(db);
        let filters: Vec<(Option<ProductStatus>, Option<&str>, bool)> = vec![
            (None, None, false),
            (Some(ProductStatus::Active), None, false),
            (Some(ProductStatus::Archived), None, false),
            (None, None, true),
            (Some(ProductStatus::Active), None, true),
            (None, Some("MUG"), false),
            (Some(ProductStatus::Active), Some("mUg"), true),
            (None, Some("%"), false),
            (None, Some("_"), false),
            (None, Some("\\"), false),
            (None, Some("äP"), false),
            (None, Some("σ"), false),
            (None, Some("zzz"), false),
        ];
        for (status, needle, in_stock) in filters {
            for sort in SORTS {
                for direction in DIRECTIONS {
                    let mut expected: Vec<&Product> = all
                        .iter()
                        .filter(|product| status.is_none_or(|status| product.status == status))
                        .filter(|product| needle.is_none_or(|needle| fold(product.name.as_str()).contains(&fold(needle))))
                        .filter(|product| !in_stock || product.stock.available() > 0)
                        .collect();
                    expected.sort_by(|a, b| key_order(sort, a, b));
                    if direction == Some(SortDirection::Descending) {
                        expected.reverse();
                    }
                    let expected: Vec<ProductId> = expected.iter().map(|product| product.id).collect();
                    for limit in [1, 3, 100] {
                        let query = ProductQuery {
                            status,
                            name_contains: needle.map(str::to_owned),
                            in_stock,
                            sort,
                            direction,
                            after: None,
                            limit: PageLimit::new(limit).unwrap(),
                        };
                        let walked = walk(&repo, query);
                        assert_eq!(walked, expected, "status {status:?}, q {needle:?}, in_stock {in_stock}, {sort:?} {direction:?}, limit {limit}");
                    }
                }
            }
        }
    }

    fn rows_inserted_during_a_walk_neither_repeat_nor_skip_existing_rows(db: &TestDatabase) {
        let repo = products(db);
        for sort in SORTS {
            for direction in [SortDirection::Ascending, SortDirection::Descending] {
                db.execute("DELETE FROM stock_adjustments");
                db.execute("DELETE FROM products");
                // Keys 10, 10, 11, 11, 12, 12: ties everywhere.
                let originals: Vec<Product> = (0..6)
                    .map(|i| insert_product(db, &new_product(&format!("M {}", 10 + i / 2), 1000 + i / 2, 1, at(10 + i / 2))).0)
                    .collect();
                let mut expected: Vec<&Product> = originals.iter().collect();
                expected.sort_by(|a, b| key_order(sort, a, b));
                if direction == SortDirection::Descending {
                    expected.reverse();
                }
                let expected: Vec<ProductId> = expected.iter().map(|product| product.id).collect();

                // Rows that sort first, last, and among the rows not yet seen (a tie of key 11, in the middle either way).
                let (first, last, middle) = (
                    new_product("A", 1, 1, at(0)),
                    new_product("Z", 9999, 1, at(99)),
                    new_product("M 11", 1001, 1, at(11)),
                );
                let (before, after) = if direction == SortDirection::Ascending { (&first, &last) } else { (&last, &first) };
                let limit = PageLimit::new(2).unwrap();
                let mut query = ProductQuery { sort, direction: Some(direction), limit, ..ProductQuery::default() };
                let mut seen = Vec::new();
                loop {
                    let page = Page::from_overfetched(repo.list(&query).unwrap(), limit);
                    seen.extend(page.items.iter().map(|product| product.id));
                    if seen.len() == 2 {
                        for late in [&first, &last, &middle] {
                            insert_product(db, late);
                        }
                    }
                    if !page.has_more {
                        break;
                    }
                    query.after = page.items.last().map(|product| ProductCursor::of(product, sort));
                }
                let context = format!("{sort:?} {direction:?}");
                assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len(), "{context}: a row repeated");
                assert!(!seen.contains(&before.id), "{context}: a row behind the cursor appeared");
                assert_eq!(seen.last(), Some(&after.id), "{context}: the row sorting last is seen last");
                assert!(seen.contains(&middle.id), "{context}: a row ahead of the cursor is seen");
                let existing: Vec<ProductId> = seen.iter().copied().filter(|id| ![first.id, last.id, middle.id].contains(id)).collect();
                assert_eq!(existing, expected, "{context}: existing rows skipped or out of order");
            }
        }
    }

    fn an_empty_catalogue_lists_nothing_and_list_fetches_one_beyond_the_limit(db: &TestDatabase) {
        let repo = products(db);
        let query = ProductQuery { limit: PageLimit::new(3).unwrap(), ..ProductQuery::default() };
        assert!(repo.list(&query).unwrap().is_empty());
        for i in 0..5 {
            insert_product(db, &new_product("Mug", 100, 0, at(i)));
        }
        assert_eq!(repo.list(&query).unwrap().len(), 4);
    }

    fn a_cursor_of_another_sort_order_is_an_error_not_a_panic(db: &TestDatabase) {
        let (product, _) = insert_product(db, &new_product("Mug", 100, 0, at(0)));
        let query = ProductQuery {
            sort: ProductSortKey::Name,
            after: Some(ProductCursor::of(&product, ProductSortKey::Price)),
            ..ProductQuery::default()
        };
        assert!(matches!(products(db).list(&query), Err(StoreError::Unexpected(_))));
    }

    fn list_queries_are_index_backed_keyset_queries(db: &TestDatabase) {
        let (product, _) = insert_product(db, &new_product("Mug", 100, 3, at(0)));
        for sort in SORTS {
            let key = match sort {
                ProductSortKey::CreatedAt => "created_at",
                ProductSortKey::Name => "name",
                ProductSortKey::Price => "unit_price_amount",
            };
            for direction in DIRECTIONS {
                for status in [None, Some(ProductStatus::Active)] {
                    for after in [None, Some(ProductCursor::of(&product, sort))] {
                        for (needle, in_stock) in [(None, false), (Some("mug"), true)] {
                            let query = ProductQuery {
                                status,
                                name_contains: needle.map(str::to_owned),
                                in_stock,
                                sort,
                                direction,
                                after: after.clone(),
                                limit: PageLimit::new(20).unwrap(),
                            };
                            let explained = db.explain_product_list(&query);
                            let index = match status {
                                Some(_) => format!("products_status_{key}_id_idx"),
                                None => format!("products_{key}_id_idx"),
                            };
                            let context = format!("{query:?}\n{}\n{}", explained.sql, explained.plan);
                            assert!(!explained.sql.to_uppercase().contains("OFFSET"), "{context}");
                            assert!(explained.sql.to_uppercase().contains("LIMIT"), "{context}");
                            match db.backend() {
                                Backend::Postgres => {
                                    assert!(explained.plan.contains(&format!("Index Scan using {index} "))
                                        || explained.plan.contains(&format!("Index Scan Backward using {index} ")), "{context}");
                                    assert!(!explained.plan.contains("Sort"), "{context}");
                                    assert!(!explained.plan.contains("Seq Scan"), "{context}");
                                }
                                Backend::Sqlite => {
                                    assert!(explained.plan.lines().any(|line| line.ends_with(&format!("USING INDEX {index}")) || line.contains(&format!("USING INDEX {index} ("))), "{context}");
                                    assert!(!explained.plan.contains("TEMP B-TREE"), "{context}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn adjustments_add_and_remove_stock_and_record_the_trail_and_an_event(db: &TestDatabase) {
        let repo = products(db);
        let (product, creator) = insert_product(db, &new_product("Mug", 100, 10, at(0)));
        let admin = insert_admin(db);

        let (added, after_add) = adjusted(repo.adjust_stock(product.id, delta(5), &reason("delivery"), admin, at(10)));
        assert_eq!((added.delta, added.on_hand_after, added.actor_id), (5, 15, admin));
        assert_eq!((added.product_id, added.reason.as_str(), added.created_at), (product.id, "delivery", at(10)));
        assert_eq!((after_add.stock.on_hand(), after_add.version, after_add.updated_at), (15, 2, at(10)));
        assert_eq!((after_add.name.clone(), after_add.created_at), (product.name.clone(), product.created_at));

        let (removed, after_remove) = adjusted(repo.adjust_stock(product.id, delta(-15), &reason("stock take"), creator, at(20)));
        assert_eq!((removed.delta, removed.on_hand_after), (-15, 0));
        assert_eq!((after_remove.stock.on_hand(), after_remove.version), (0, 3));
        assert_eq!(repo.find_by_id(product.id).unwrap(), Some(after_remove));

        // Newest first, the initial stock last.
        let recorded = trail(&repo, product.id);
        let steps: Vec<(i64, i64)> = recorded.iter().map(|a| (a.delta, a.on_hand_after)).collect();
        assert_eq!(steps, [(-15, 0), (5, 15), (10, 10)]);
        assert_eq!(recorded[0], removed);
        assert_eq!(recorded[1], added);

        let events: Vec<_> = db.recorded_events().into_iter().filter(|event| event.event_type == "stock.adjusted").collect();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].subject_type.as_str(), events[0].subject_id.clone()), ("product", product.id.to_string()));
        assert_eq!(events[0].occurred_at, at(10));
        assert_eq!(
            events[0].data,
            serde_json::json!({
                "product_id": product.id.to_string(),
                "adjustment_id": added.id.to_string(),
                "delta": 5,
                "reason": "delivery",
                "on_hand": 15,
                "reserved": 0,
                "available": 15,
                "actor_id": admin.to_string(),
            })
        );
        assert_eq!(events[1].data["on_hand"], 0);
        assert_eq!(events[1].data["actor_id"], creator.to_string());
    }

    fn an_adjustment_below_reserved_is_refused_and_writes_nothing(db: &TestDatabase) {
        let repo = products(db);
        let (product, admin) = insert_product(db, &new_product("Mug", 100, 10, at(0)));
        assert_eq!(db.execute(&format!("UPDATE products SET reserved = 4 WHERE id = '{}'", product.id)), 1);
        let before = repo.find_by_id(product.id).unwrap().unwrap();
        let events_before = db.recorded_events();

        let outcome = repo.adjust_stock(product.id, delta(-7), &reason("breakage"), admin, at(1));
        assert!(matches!(outcome, Err(StockAdjustmentError::BelowReserved { on_hand: 10, reserved: 4 })), "{outcome:?}");
        assert_eq!(repo.find_by_id(product.id).unwrap(), Some(before));
        assert_eq!(trail(&repo, product.id).len(), 1);
        assert_eq!(db.recorded_events(), events_before);

        // Down to exactly the reserved units is allowed: nothing is left available.
        let (_, product) = adjusted(repo.adjust_stock(product.id, delta(-6), &reason("breakage"), admin, at(2)));
        assert_eq!((product.stock.on_hand(), product.stock.reserved(), product.stock.available()), (4, 4, 0));
        let outcome = repo.adjust_stock(product.id, delta(-1), &reason("breakage"), admin, at(3));
        assert!(matches!(outcome, Err(StockAdjustmentError::BelowReserved { on_hand: 4, reserved: 4 })), "{outcome:?}");
    }

    fn adjusting_a_missing_product_is_not_found(db: &TestDatabase) {
        let admin = insert_admin(db);
        let outcome = products(db).adjust_stock(ProductId::new(), delta(3), &reason("delivery"), admin, at(1));
        assert!(matches!(outcome, Err(StockAdjustmentError::NotFound)), "{outcome:?}");
        assert!(db.recorded_events().iter().all(|event| event.event_type != "stock.adjusted"));
    }

    /// The concurrency test: 8 threads × 25 adjustments of ±1..±5 on one product whose
    /// stock sits close to its reservation, so that many would cross it when raced.
    fn concurrent_adjustments_never_lose_an_update_nor_cross_the_reservation(db: &TestDatabase) {
        const INITIAL: i64 = 40;
        const RESERVED: i64 = 30;
        let (product, admin) = insert_product(db, &new_product("Contended", 100, INITIAL, at(0)));
        db.execute(&format!("UPDATE products SET reserved = {RESERVED} WHERE id = '{}'", product.id));
        let barrier = Barrier::new(8);
        type Adjusted = Result<(StockAdjustment, Product), StockAdjustmentError>;
        let outcomes: Vec<(i64, Adjusted)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8_u64)
                .map(|thread| {
                    let (repo, barrier) = (products(db), &barrier);
                    scope.spawn(move || {
                        let mut seed = thread.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
                        barrier.wait();
                        (0..25)
                            .map(|step| {
                                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                                let size = i64::try_from((seed >> 33) % 5).unwrap() + 1;
                                // Two -5s per thread first: 8 × 10 units against a margin of 10,
                                // so refusals are certain; then a random walk around the bound.
                                let amount = if step < 2 {
                                    -5
                                } else if (seed >> 40) % 2 == 0 {
                                    -size
                                } else {
                                    size
                                };
                                let outcome = repo
                                    .adjust_stock(product.id, delta(amount), &reason(&format!("thread {thread} step {step}")), admin, at(1));
                                (amount, outcome)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|handle| handle.join().unwrap()).collect()
        });

        let mut applied: Vec<(i64, StockAdjustment, Product)> = Vec::new();
        let mut refused = 0;
        for (amount, outcome) in outcomes {
            match outcome {
                Ok((adjustment, product)) => {
                    assert_eq!(adjustment.delta, amount);
                    assert!(product.stock.on_hand() >= product.stock.reserved());
                    applied.push((amount, adjustment, product));
                }
                Err(StockAdjustmentError::BelowReserved { on_hand, reserved }) => {
                    assert_eq!(reserved, RESERVED);
                    assert!(on_hand + amount < reserved, "refused {amount} at on_hand {on_hand}");
                    refused += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(applied.len() + refused, 200);
        assert!(refused > 0 && !applied.is_empty(), "applied {}, refused {refused}", applied.len());

        let applied_sum: i64 = applied.iter().map(|(amount, _, _)| amount).sum();
        let final_product = products(db).find_by_id(product.id).unwrap().unwrap();
        assert_eq!(final_product.stock.on_hand(), INITIAL + applied_sum);
        assert_eq!(final_product.stock.reserved(), RESERVED);
        assert_eq!(final_product.version, 1 + applied.len() as i64);

        // Serialisable: ordered by the version each produced, every adjustment started from
        // the stock the previous one left, and the versions leave no gap.
        applied.sort_by_key(|(_, _, product)| product.version);
        let mut on_hand = INITIAL;
        for (index, (amount, adjustment, product)) in applied.iter().enumerate() {
            assert_eq!(product.version, index as i64 + 2);
            on_hand += amount;
            assert_eq!((adjustment.on_hand_after, product.stock.on_hand()), (on_hand, on_hand));
            assert!(on_hand >= RESERVED);
        }

        let recorded = trail(&products(db), product.id);
        assert_eq!(recorded.len(), applied.len() + 1, "one row per applied adjustment, plus the initial stock");
        assert_eq!(recorded.iter().map(|adjustment| adjustment.delta).sum::<i64>(), final_product.stock.on_hand());
        let events = db.recorded_events().into_iter().filter(|event| event.event_type == "stock.adjusted").count();
        assert_eq!(events, applied.len());
    }

    fn the_audit_trail_lists_newest_first_page_by_page(db: &TestDatabase) {
        let repo = products(db);
        let (product, admin) = insert_product(db, &new_product("Mug", 100, 1, at(0)));
        let (other, _) = insert_product(db, &new_product("Other", 100, 1, at(0)));
        let mut made = vec![trail(&repo, product.id)[0].id];
        for i in 1..=6 {
            // All at the same time: ids alone order the trail.
            let (adjustment, _) = adjusted(repo.adjust_stock(product.id, delta(i), &reason("delivery"), admin, at(5)));
            made.push(adjustment.id);
            repo.adjust_stock(other.id, delta(1), &reason("elsewhere"), admin, at(5)).unwrap();
        }
        made.reverse();
        for limit in [1, 2, 3, 7, 100] {
            let limit = PageLimit::new(limit).unwrap();
            let mut query = AdjustmentQuery { after: None, limit };
            let mut seen = Vec::new();
            loop {
                let rows = repo.list_adjustments(product.id, &query).unwrap();
                assert!(rows.len() <= usize::from(limit.get()) + 1);
                let page = Page::from_overfetched(rows, limit);
                assert!(page.items.iter().all(|adjustment| adjustment.product_id == product.id));
                seen.extend(page.items.iter().map(|adjustment| adjustment.id));
                if !page.has_more {
                    break;
                }
                query.after = page.items.last().map(|adjustment| adjustment.id);
            }
            assert_eq!(seen, made, "limit {limit:?}");
        }
        assert!(repo.list_adjustments(ProductId::new(), &AdjustmentQuery::default()).unwrap().is_empty());
    }

    fn every_change_records_one_event_in_order(db: &TestDatabase) {
        let repo = products(db);
        let (product, admin) = insert_product(db, &new_product("Mug", 100, 2, at(0)));
        let update = ProductUpdate { unit_price: Some(price(150)), ..ProductUpdate::default() };
        repo.update(product.id, &update, 1, &updated_event(&product, &update, admin), at(1)).unwrap();
        repo.adjust_stock(product.id, delta(3), &reason("delivery"), admin, at(2)).unwrap();
        let archive = ProductUpdate { status: Some(ProductStatus::Archived), ..ProductUpdate::default() };
        repo.update(product.id, &archive, 3, &updated_event(&product, &archive, admin), at(3)).unwrap();
        let events: Vec<(String, String)> = db
            .recorded_events()
            .into_iter()
            .filter(|event| event.subject_type == "product")
            .map(|event| (event.event_type, event.subject_id))
            .collect();
        let id = product.id.to_string();
        assert_eq!(
            events,
            [
                ("product.created".to_owned(), id.clone()),
                ("product.updated".to_owned(), id.clone()),
                ("stock.adjusted".to_owned(), id.clone()),
                ("product.updated".to_owned(), id),
            ]
        );
    }
}

/// A catalogue of 20 products with ties on every sort key, both statuses, mixed-case and
/// non-ASCII names, wildcard characters, and some fully reserved stock. Returned as stored.
fn seed_catalogue(db: &TestDatabase) -> Vec<Product> {
    let repo = products(db);
    let names = [
        "Mug",
        "mug",
        "Mug",
        "Äpfel",
        "apple",
        "Zebra",
        "50% off",
        "500 off",
        "a_b",
        "axb",
        "back\\slash",
        "éclair",
        "Ångström",
        "Mug",
        "TEA pot",
        "teapot",
        "Σ sigma",
        "ΟΔΟΣ",
        "zebra",
        "Apple",
    ];
    let admin = insert_admin(db);
    let mut all = Vec::new();
    for (i, name) in (0_u32..).zip(names) {
        let mut new = new_product(name, i64::from(i % 4) * 250, i64::from(i % 3), at(i64::from(i % 6)));
        // Ids that do not follow insertion order, so the id tie-breaker is really exercised.
        new.id = ProductId::from_uuid(Uuid::from_u128(
            u128::from(i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
        ));
        let mut product = repo.insert(&new, &product_created(&new, admin)).unwrap();
        if i % 5 == 2 {
            let archive = ProductUpdate { status: Some(ProductStatus::Archived), ..ProductUpdate::default() };
            let archived =
                repo.update(product.id, &archive, 1, &updated_event(&product, &archive, admin), at(50)).unwrap();
            product = archived;
        }
        if i % 7 == 1 {
            // Everything on hand is reserved: not in stock.
            db.execute(&format!("UPDATE products SET reserved = on_hand WHERE id = '{}'", product.id));
            product = repo.find_by_id(product.id).unwrap().unwrap();
        }
        all.push(product);
    }
    assert!(all.iter().any(|product| product.stock.on_hand() > 0 && product.stock.available() == 0));
    all
}

/// Walks every page the way the service does and returns the ids in the order seen.
fn walk(repo: &impl ProductRepository, mut query: ProductQuery) -> Vec<ProductId> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let rows = repo.list(&query).unwrap();
        assert!(rows.len() <= usize::from(query.limit.get()) + 1);
        let page = Page::from_overfetched(rows, query.limit);
        seen.extend(page.items.iter().map(|product| product.id));
        if !page.has_more {
            return seen;
        }
        query.after = page.items.last().map(|product| ProductCursor::of(product, query.sort));
    }
    panic!("pagination did not end");
}

/// A product's whole audit trail, newest first.
fn trail(repo: &impl ProductRepository, product: ProductId) -> Vec<StockAdjustment> {
    let mut query = AdjustmentQuery { after: None, limit: PageLimit::new(100).unwrap() };
    let mut all = Vec::new();
    loop {
        let page = Page::from_overfetched(repo.list_adjustments(product, &query).unwrap(), query.limit);
        all.extend(page.items);
        if !page.has_more {
            return all;
        }
        query.after = all.last().map(|adjustment| adjustment.id);
    }
}

/// The order the catalogue promises: the sort key (names byte-wise), then the id.
fn key_order(sort: ProductSortKey, a: &Product, b: &Product) -> std::cmp::Ordering {
    match sort {
        ProductSortKey::CreatedAt => (a.created_at, a.id).cmp(&(b.created_at, b.id)),
        ProductSortKey::Name => (a.name.as_str(), a.id).cmp(&(b.name.as_str(), b.id)),
        ProductSortKey::Price => (a.unit_price.amount(), a.id).cmp(&(b.unit_price.amount(), b.id)),
    }
}

/// The adapter's folding: lower case, character by character.
fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

fn delta(amount: i64) -> StockDelta {
    StockDelta::parse(amount).unwrap()
}

fn reason(text: &str) -> AdjustmentReason {
    AdjustmentReason::parse(text).unwrap()
}

fn adjusted(outcome: Result<(StockAdjustment, Product), StockAdjustmentError>) -> (StockAdjustment, Product) {
    outcome.unwrap_or_else(|refusal| panic!("expected the adjustment made, got {refusal:?}"))
}

fn updated_event(product: &Product, update: &ProductUpdate, actor: UserId) -> orderly_domain::event::DomainEvent {
    orderly_domain::event::DomainEvent::ProductUpdated {
        product_id: product.id,
        fields: update.changed_fields(),
        status: update.status,
        actor_id: actor,
        occurred_at: at(0),
    }
}
