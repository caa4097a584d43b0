//! `RefreshTokenRepository` over diesel: token families, stored by digest, rotated atomically.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use orderly_domain::StoreError;
use orderly_domain::auth::{NewRefreshToken, RefreshTokenHash, Rotation, StoredRefreshToken};
use orderly_domain::ports::RefreshTokenRepository;
use orderly_domain::user::UserId;
use uuid::Uuid;

use crate::connection::{AnyConnection, write_transaction};
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::{refresh_token_families as families, refresh_tokens as tokens};
use crate::timestamps;

#[derive(Insertable)]
#[diesel(table_name = families)]
struct NewFamilyRow {
    id: String,
    user_id: String,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = tokens)]
struct NewTokenRow<'a> {
    id: String,
    family_id: String,
    user_id: String,
    token_hash: &'a str,
    issued_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    spent_at: Option<NaiveDateTime>,
}

impl<'a> NewTokenRow<'a> {
    fn of(token: &'a NewRefreshToken) -> Self {
        Self {
            id: token.id.to_string(),
            family_id: token.family_id.to_string(),
            user_id: token.user_id.to_string(),
            token_hash: token.hash.as_str(),
            issued_at: timestamps::to_db(token.issued_at),
            expires_at: timestamps::to_db(token.expires_at),
            spent_at: None,
        }
    }
}

/// A token joined to its family.
#[derive(Debug, Queryable)]
struct StoredTokenRow {
    id: String,
    family_id: String,
    user_id: String,
    expires_at: NaiveDateTime,
    spent_at: Option<NaiveDateTime>,
    family_revoked_at: Option<NaiveDateTime>,
}

impl StoredTokenRow {
    fn into_domain(self) -> Result<StoredRefreshToken, StoreError> {
        let parse = |id: &str| Uuid::parse_str(id).map_err(|error| corrupt_row("refresh token", error));
        Ok(StoredRefreshToken {
            id: parse(&self.id)?,
            family_id: parse(&self.family_id)?,
            user_id: UserId::from_uuid(parse(&self.user_id)?),
            expires_at: timestamps::from_db(self.expires_at),
            spent: self.spent_at.is_some(),
            family_revoked: self.family_revoked_at.is_some(),
        })
    }
}

/// Refresh tokens in `refresh_tokens`, grouped by `refresh_token_families`.
#[derive(Debug, Clone)]
pub struct DieselRefreshTokenRepository {
    db: Database,
}

impl DieselRefreshTokenRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn insert_token(conn: &mut AnyConnection, token: &NewRefreshToken) -> QueryResult<()> {
    diesel::insert_into(tokens::table).values(NewTokenRow::of(token)).execute(conn).map(drop)
}

impl RefreshTokenRepository for DieselRefreshTokenRepository {
    fn start_family(&self, token: &NewRefreshToken) -> Result<(), StoreError> {
        let family = NewFamilyRow {
            id: token.family_id.to_string(),
            user_id: token.user_id.to_string(),
            created_at: timestamps::to_db(token.issued_at),
            revoked_at: None,
        };
        let mut conn = self.db.connection()?;
        write_transaction(&mut conn, |conn| {
            diesel::insert_into(families::table).values(&family).execute(conn)?;
            insert_token(conn, token)
        })
        .map_err(|error| query_failed(error, "starting a refresh-token family"))
    }

    fn find_by_hash(&self, hash: &RefreshTokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        let mut conn = self.db.connection()?;
        let row = tokens::table
            .inner_join(families::table)
            .filter(tokens::token_hash.eq(hash.as_str()))
            .select((
                tokens::id,
                tokens::family_id,
                tokens::user_id,
                tokens::expires_at,
                tokens::spent_at,
                families::revoked_at,
            ))
            .first::<StoredTokenRow>(&mut *conn)
            .optional()
            .map_err(|error| query_failed(error, "reading a refresh token"))?;
        row.map(StoredTokenRow::into_domain).transpose()
    }

    /// `next` must belong to the family of `spent`; otherwise nothing matches and the outcome
    /// is `Lost`.
    fn rotate(&self, spent: Uuid, next: &NewRefreshToken, now: DateTime<Utc>) -> Result<Rotation, StoreError> {
        let (spent, family_id, now) = (spent.to_string(), next.family_id.to_string(), timestamps::to_db(now));
        let mut conn = self.db.connection()?;
        write_transaction(&mut conn, |conn| {
            // One conditional UPDATE decides the race: of several requests presenting the same
            // token, the database lets exactly one change `spent_at` from NULL. On PostgreSQL
            // the losers wait on the row lock, then re-check `spent_at IS NULL` and match
            // nothing; on SQLite writers are serialised by the write lock.
            let family_unrevoked =
                families::table.filter(families::id.eq(&family_id)).filter(families::revoked_at.is_null());
            let won = diesel::update(
                tokens::table
                    .filter(tokens::id.eq(&spent))
                    .filter(tokens::spent_at.is_null())
                    .filter(tokens::family_id.eq(&family_id))
                    .filter(diesel::dsl::exists(family_unrevoked)),
            )
            .set(tokens::spent_at.eq(Some(now)))
            .execute(conn)?;
            if won == 0 {
                return Ok(Rotation::Lost);
            }
            insert_token(conn, next)?;
            Ok(Rotation::Rotated)
        })
        .map_err(|error| query_failed(error, "rotating a refresh token"))
    }

    fn revoke_family(&self, family_id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut conn = self.db.connection()?;
        // Only the first revocation is recorded; revoking again changes nothing.
        diesel::update(
            families::table.filter(families::id.eq(family_id.to_string())).filter(families::revoked_at.is_null()),
        )
        .set(families::revoked_at.eq(Some(timestamps::to_db(now))))
        .execute(&mut *conn)
        .map(drop)
        .map_err(|error| query_failed(error, "revoking a refresh-token family"))
    }
}
