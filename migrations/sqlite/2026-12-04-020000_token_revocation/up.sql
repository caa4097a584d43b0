-- Revoking access tokens (ADR 0015). Every access token carries the generation of its user it
-- was issued under; a revoking change (logout, password change, deactivation, role change,
-- a family revoked for reuse) bumps the counter in its own transaction, and a token is
-- accepted only while its generation is the current one. A counter, not a timestamp: exact
-- within one second and immune to clock skew between instances. Read by primary key.
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0 CHECK (token_generation >= 0);

-- The refresh reuse leeway (ADR 0015): the token that replaced a spent one, so a retry of a
-- refresh whose answer was lost can void that unused successor and be answered again.
-- `spent_at` is the moment of the rotation the leeway runs from.
ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT;

-- When the access token issued together with this refresh token was first used (ADR 0015):
-- either token of a pair being used shows its answer arrived, so a retry of the refresh that
-- issued it is reuse, not a retry. Set once, by a conditional UPDATE, the first time an
-- instance sees the access token; read only inside the UPDATE that voids an unused successor.
ALTER TABLE refresh_tokens ADD COLUMN access_used_at TIMESTAMP;
