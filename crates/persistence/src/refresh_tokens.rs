//! `RefreshTokenRepository` over diesel: token families, stored by digest, rotated atomically;
//! the first use of the access token issued with a refresh token is recorded on its row
//! (`access_used_at`); a retry within the reuse leeway replaces a successor unused in both
//! senses atomically; revoking a family bumps its user's token generation in the same
//! transaction (ADR 0015).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use orderly_domain::StoreError;
use orderly_domain::auth::{NewRefreshToken, RefreshTokenHash, Replacement, Rotation, StoredRefreshToken};
use orderly_domain::ports::RefreshTokenRepository;
use orderly_domain::user::UserId;
use uuid::Uuid;

use crate::connection::{AnyConnection, write_transaction};
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::{refresh_token_families as families, refresh_tokens as tokens, users};
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
    replaced_by: Option<String>,
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
            replaced_by: None,
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
    replaced_by: Option<String>,
    family_revoked_at: Option<NaiveDateTime>,
}

impl StoredTokenRow {
    fn into_domain(self) -> Result<StoredRefreshToken, StoreError> {
        let parse = |id: &str| Uuid::parse_str(id).map_err(|error| corrupt_row("refresh token", error));
        // Spent with a successor: rotated. Spent without one: voided by a retry.
        let replaced = match (self.spent_at, &self.replaced_by) {
            (Some(at), Some(successor)) => {
                Some(Replacement { at: timestamps::from_db(at), successor: parse(successor)? })
            }
            _ => None,
        };
        Ok(StoredRefreshToken {
            id: parse(&self.id)?,
            family_id: parse(&self.family_id)?,
            user_id: UserId::from_uuid(parse(&self.user_id)?),
            expires_at: timestamps::from_db(self.expires_at),
            spent: self.spent_at.is_some(),
            replaced,
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
        self.db.with_connection(|conn| {
            write_transaction(conn, |conn| {
                diesel::insert_into(families::table).values(&family).execute(conn)?;
                insert_token(conn, token)
            })
            .map_err(|error| query_failed(error, "starting a refresh-token family"))
        })
    }

    fn find_by_hash(&self, hash: &RefreshTokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        self.db.with_connection(|conn| {
            let row = tokens::table
                .inner_join(families::table)
                .filter(tokens::token_hash.eq(hash.as_str()))
                .select((
                    tokens::id,
                    tokens::family_id,
                    tokens::user_id,
                    tokens::expires_at,
                    tokens::spent_at,
                    tokens::replaced_by,
                    families::revoked_at,
                ))
                .first::<StoredTokenRow>(conn)
                .optional()
                .map_err(|error| query_failed(error, "reading a refresh token"))?;
            row.map(StoredTokenRow::into_domain).transpose()
        })
    }

    /// `next` must belong to the family of `spent`; otherwise nothing matches and the outcome
    /// is `Lost`.
    fn rotate(&self, spent: Uuid, next: &NewRefreshToken, now: DateTime<Utc>) -> Result<Rotation, StoreError> {
        let (spent, family_id, now) = (spent.to_string(), next.family_id.to_string(), timestamps::to_db(now));
        self.db.with_connection(|conn| {
            write_transaction(conn, |conn| {
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
                .set((tokens::spent_at.eq(Some(now)), tokens::replaced_by.eq(Some(next.id.to_string()))))
                .execute(conn)?;
                if won == 0 {
                    return Ok(Rotation::Lost);
                }
                insert_token(conn, next)?;
                Ok(Rotation::Rotated)
            })
            .map_err(|error| query_failed(error, "rotating a refresh token"))
        })
    }

    fn replace_unused_successor(
        &self,
        spent: Uuid,
        successor: Uuid,
        next: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        let (spent, successor, family_id) = (spent.to_string(), successor.to_string(), next.family_id.to_string());
        let now = timestamps::to_db(now);
        self.db.with_connection(|conn| {
            let outcome = write_transaction(conn, |conn| {
                // The successor's row decides, as the spent token's row does in `rotate`: voiding
                // it is one conditional UPDATE, which matches only while the successor pair is
                // unused — the refresh token unspent (not used for a refresh, not voided by a
                // racing retry) and no use of its access token recorded. On PostgreSQL a racing
                // retry, refresh or recorded access use waits on its row lock and then this matches
                // nothing (or it goes first, and the access use is recorded on a voided token); on
                // SQLite writers are serialised. Its `replaced_by` stays NULL: a voided token is
                // spent without a successor, and presenting it is reuse, never a retry.
                let family_unrevoked =
                    families::table.filter(families::id.eq(&family_id)).filter(families::revoked_at.is_null());
                let voided = diesel::update(
                    tokens::table
                        .filter(tokens::id.eq(&successor))
                        .filter(tokens::spent_at.is_null())
                        .filter(tokens::access_used_at.is_null())
                        .filter(tokens::family_id.eq(&family_id))
                        .filter(diesel::dsl::exists(family_unrevoked)),
                )
                .set(tokens::spent_at.eq(Some(now)))
                .execute(conn)?;
                if voided == 0 {
                    return Ok(Rotation::Lost);
                }
                // The spent token's rotation keeps its time (the leeway never grows) and now points
                // at the token that replaces the voided one. If it no longer pointed at the voided
                // one, it was not the successor asked about: undo everything.
                let repointed = diesel::update(
                    tokens::table
                        .filter(tokens::id.eq(&spent))
                        .filter(tokens::family_id.eq(&family_id))
                        .filter(tokens::replaced_by.eq(&successor)),
                )
                .set(tokens::replaced_by.eq(Some(next.id.to_string())))
                .execute(conn)?;
                if repointed == 0 {
                    return Err(diesel::result::Error::RollbackTransaction);
                }
                insert_token(conn, next)?;
                Ok(Rotation::Rotated)
            });
            match outcome {
                Err(diesel::result::Error::RollbackTransaction) => Ok(Rotation::Lost),
                other => other,
            }
            .map_err(|error| query_failed(error, "replacing an unused refresh token"))
        })
    }

    fn record_access_use(&self, token: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.db.with_connection(|conn| {
            // One conditional UPDATE, no transaction of its own: only the first use is recorded
            // (`access_used_at IS NULL`), so repeating it — from another instance, or after this
            // instance forgot it had recorded — writes nothing. It takes the same row lock as
            // voiding the token in `replace_unused_successor`, which settles a race between them.
            diesel::update(
                tokens::table.filter(tokens::id.eq(token.to_string())).filter(tokens::access_used_at.is_null()),
            )
            .set(tokens::access_used_at.eq(Some(timestamps::to_db(now))))
            .execute(conn)
            .map(drop)
            .map_err(|error| query_failed(error, "recording the use of an access token"))
        })
    }

    fn revoke_family(&self, family_id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let family_id = family_id.to_string();
        self.db.with_connection(|conn| {
            write_transaction(conn, |conn| {
                // Only the first revocation is recorded; revoking again changes nothing, and bumps
                // nothing.
                let revoked = diesel::update(
                    families::table.filter(families::id.eq(&family_id)).filter(families::revoked_at.is_null()),
                )
                .set(families::revoked_at.eq(Some(timestamps::to_db(now))))
                .execute(conn)?;
                if revoked > 0 {
                    // The user's access tokens go with the session (ADR 0015).
                    let owner = families::table.filter(families::id.eq(&family_id)).select(families::user_id);
                    diesel::update(users::table.filter(users::id.eq_any(owner)))
                        .set(users::token_generation.eq(users::token_generation + 1))
                        .execute(conn)?;
                }
                Ok(())
            })
            .map_err(|error| query_failed(error, "revoking a refresh-token family"))
        })
    }
}
