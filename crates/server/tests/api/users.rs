//! Registration, reading, listing and changing users, as customers and admins (docs/api.md#users-and-tokens).

use awc::http::StatusCode;
use serde_json::json;

use crate::on_both_backends;
use crate::support::PASSWORD;

on_both_backends! {
    async fn registration_creates_a_customer_with_location_and_no_secrets(app) {
        let reply = app.post("/v1/users", None, &json!({"email": "  Ada@Example.COM ", "password": PASSWORD, "name": "Ada"})).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        let user = reply.json();
        assert_eq!(reply.header("location"), Some(format!("/v1/users/{}", user["id"].as_str().unwrap())));
        assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(user["email"], "ada@example.com");
        assert_eq!(user["role"], "customer");
        assert_eq!(user["active"], true);
        let mut keys: Vec<_> = user.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["active", "created_at", "email", "id", "name", "role", "updated_at"]);
        let created_at = user["created_at"].as_str().unwrap();
        assert!(created_at.ends_with('Z') && created_at.len() == "2026-11-23T18:04:05.123Z".len(), "{created_at}");
        assert_eq!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap().get_version_num(), 7);
    }

    async fn a_taken_email_is_a_conflict_whatever_its_case(app) {
        app.register("grace@example.com", "Grace").await;
        let reply = app.post("/v1/users", None, &json!({"email": "GRACE@example.com", "password": PASSWORD, "name": "G"})).await;
        reply.problem(409, "email_taken");
    }

    async fn two_unicode_spellings_of_one_email_are_one_account(app) {
        // "jürgen@example.com" with a precomposed ü, and with u + combining diaeresis: they look
        // the same, and are the same address once normalised (NFC).
        let precomposed = "j\u{fc}rgen@example.com";
        let decomposed = "ju\u{308}rgen@example.com";
        let registered = app.post("/v1/users", None, &json!({"email": decomposed, "password": PASSWORD, "name": "J"})).await;
        assert_eq!(registered.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&registered.body));
        assert_eq!(registered.json()["email"], precomposed, "the email is returned in NFC");

        let again = app.post("/v1/users", None, &json!({"email": precomposed, "password": PASSWORD, "name": "J"})).await;
        again.problem(409, "email_taken");
        let shouting = app.post("/v1/users", None, &json!({"email": " JU\u{308}RGEN@example.com ", "password": PASSWORD, "name": "J"})).await;
        shouting.problem(409, "email_taken");

        for spelling in [decomposed, precomposed] {
            let session = app.session(spelling, PASSWORD).await;
            let me = app.get("/v1/users/me", Some(&session.access_token)).await;
            assert_eq!(me.json()["email"], precomposed, "logged in as {spelling:?}");
        }
    }

    async fn registration_reports_every_faulty_field(app) {
        let reply = app.post("/v1/users", None, &json!({"email": "nope", "password": "short", "role": "admin"})).await;
        let problem = reply.problem(422, "validation_failed");
        let mut pointers: Vec<_> = problem["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap().to_owned()).collect();
        pointers.sort();
        assert_eq!(pointers, ["/email", "/name", "/password", "/role"], "{problem}");
    }

    async fn customers_read_themselves_and_nobody_else(app) {
        let ada = app.customer("ada@example.com").await;
        let bob = app.customer("bob@example.com").await;
        let me = app.get("/v1/users/me", Some(&ada.access_token)).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.json()["email"], "ada@example.com");
        assert_eq!(me.header("cache-control").as_deref(), Some("private, no-cache"));
        assert!(me.header("vary").unwrap_or_default().to_lowercase().contains("authorization"));
        let own = app.get(&format!("/v1/users/{}", ada.user_id), Some(&ada.access_token)).await;
        assert_eq!(own.status, StatusCode::OK);
        // Someone else's account is "not found", never "forbidden": existence is not revealed.
        app.get(&format!("/v1/users/{}", bob.user_id), Some(&ada.access_token)).await.problem(404, "not_found");
        app.get("/v1/users/0192f5c2-0000-7000-8000-000000000000", Some(&ada.access_token)).await.problem(404, "not_found");
    }

    async fn single_user_reads_carry_an_etag_and_revalidate(app) {
        let ada = app.customer("ada@example.com").await;
        let first = app.get("/v1/users/me", Some(&ada.access_token)).await;
        let etag = first.header("etag").expect("an ETag");
        assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong ETag: {etag}");
        let request = app.client.get(app.url("/v1/users/me")).bearer_auth(&ada.access_token).insert_header(("If-None-Match", etag.as_str()));
        let revalidated = app.send(request, None).await;
        assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
        assert!(revalidated.body.is_empty());
        assert_eq!(revalidated.header("etag"), Some(etag.clone()));

        let patched = app.patch(&format!("/v1/users/{}", ada.user_id), &ada.access_token, None, &json!({"name": "Ada L."})).await;
        assert_eq!(patched.status, StatusCode::OK);
        assert_ne!(patched.header("etag"), Some(etag), "the ETag changes with the representation");
    }

    async fn customers_change_their_name_but_not_their_role(app) {
        let ada = app.customer("ada@example.com").await;
        let path = format!("/v1/users/{}", ada.user_id);
        let renamed = app.patch(&path, &ada.access_token, None, &json!({"name": "Ada Lovelace"})).await;
        assert_eq!(renamed.status, StatusCode::OK);
        assert_eq!(renamed.json()["name"], "Ada Lovelace");
        app.patch(&path, &ada.access_token, None, &json!({"role": "admin"})).await.problem(403, "forbidden");
        app.patch(&path, &ada.access_token, None, &json!({"active": false})).await.problem(403, "forbidden");
        let unknown = app.patch(&path, &ada.access_token, None, &json!({"unit_price": 1})).await.problem(422, "validation_failed");
        assert_eq!(unknown["errors"][0]["pointer"], "/unit_price");
        assert_eq!(app.get("/v1/users/me", Some(&ada.access_token)).await.json()["role"], "customer");
    }

    async fn a_stale_if_match_is_refused(app) {
        let ada = app.customer("ada@example.com").await;
        let path = format!("/v1/users/{}", ada.user_id);
        let etag = app.get(&path, Some(&ada.access_token)).await.header("etag").unwrap();
        let first = app.patch(&path, &ada.access_token, Some(&etag), &json!({"name": "First"})).await;
        assert_eq!(first.status, StatusCode::OK);
        app.patch(&path, &ada.access_token, Some(&etag), &json!({"name": "Second"})).await.problem(412, "precondition_failed");
        assert_eq!(app.get(&path, Some(&ada.access_token)).await.json()["name"], "First");
    }

    async fn changing_the_password_needs_the_current_one_and_ends_other_sessions(app) {
        let ada = app.customer("ada@example.com").await;
        let path = format!("/v1/users/{}", ada.user_id);
        let missing = app.patch(&path, &ada.access_token, None, &json!({"password": "a brand new password"})).await;
        assert_eq!(missing.problem(422, "validation_failed")["errors"][0]["pointer"], "/current_password");
        let wrong = app.patch(&path, &ada.access_token, None, &json!({"password": "a brand new password", "current_password": "not my password"})).await;
        assert_eq!(wrong.problem(422, "validation_failed")["errors"][0]["pointer"], "/current_password");

        let changed = app.patch(&path, &ada.access_token, None, &json!({"password": "a brand new password", "current_password": PASSWORD})).await;
        assert_eq!(changed.status, StatusCode::OK);
        app.login("ada@example.com", PASSWORD).await.problem(401, "invalid_credentials");
        assert_eq!(app.login("ada@example.com", "a brand new password").await.status, StatusCode::OK);
        // The refresh token issued before the change no longer works.
        app.post("/v1/auth/refresh", None, &json!({"refresh_token": ada.refresh_token})).await.problem(401, "unauthenticated");
    }

    async fn admins_list_users_page_by_page(app) {
        let admin = app.admin().await;
        for i in 0..5 {
            app.register(&format!("user{i}@example.com"), &format!("User {i}")).await;
        }
        let mut seen = Vec::new();
        let mut path = "/v1/users?limit=2&sort=-created_at".to_owned();
        loop {
            let reply = app.get(&path, Some(&admin.access_token)).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
            let page = reply.json();
            assert_eq!(page["page"]["limit"], 2);
            let items = page["data"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|u| u["email"].as_str().unwrap().to_owned()));
            match page["page"]["next_cursor"].as_str() {
                Some(cursor) => {
                    assert_eq!(page["page"]["has_more"], true);
                    let link = reply.header("link").expect("a Link header on a page with more");
                    assert!(link.contains("rel=\"next\""), "{link}");
                    path = format!("/v1/users?limit=2&sort=-created_at&cursor={cursor}");
                }
                None => {
                    assert_eq!(page["page"]["has_more"], false);
                    assert!(reply.header("link").is_none());
                    break;
                }
            }
        }
        // Newest first: the five customers in reverse order of registration, then the admin.
        let expected: Vec<String> = (0..5).rev().map(|i| format!("user{i}@example.com")).chain(["admin@example.com".to_owned()]).collect();
        assert_eq!(seen, expected);

        let admins = app.get("/v1/users?role=admin", Some(&admin.access_token)).await.json();
        assert_eq!(admins["data"].as_array().unwrap().len(), 1);
        app.get("/v1/users?limit=0", Some(&admin.access_token)).await.problem(400, "invalid_parameter");
        app.get("/v1/users?sort=email", Some(&admin.access_token)).await.problem(400, "invalid_parameter");
        app.get("/v1/users?cursor=forged", Some(&admin.access_token)).await.problem(400, "invalid_parameter");
    }

    async fn customers_may_not_list_users(app) {
        let ada = app.customer("ada@example.com").await;
        app.get("/v1/users", Some(&ada.access_token)).await.problem(403, "forbidden");
        app.get("/v1/users", None).await.problem(401, "unauthenticated");
    }

    async fn admins_read_anyone_and_deactivation_locks_the_user_out(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let path = format!("/v1/users/{}", ada.user_id);
        assert_eq!(app.get(&path, Some(&admin.access_token)).await.json()["email"], "ada@example.com");

        let deactivated = app.patch(&path, &admin.access_token, None, &json!({"active": false})).await;
        assert_eq!(deactivated.status, StatusCode::OK);
        assert_eq!(deactivated.json()["active"], false);
        app.login("ada@example.com", PASSWORD).await.problem(401, "invalid_credentials");
        app.post("/v1/auth/refresh", None, &json!({"refresh_token": ada.refresh_token})).await.problem(401, "unauthenticated");

        let promoted = app.patch(&path, &admin.access_token, None, &json!({"active": true, "role": "admin"})).await;
        assert_eq!(promoted.json()["role"], "admin");
        let again = app.session("ada@example.com", PASSWORD).await;
        assert_eq!(app.get("/v1/users", Some(&again.access_token)).await.status, StatusCode::OK);
    }
}
