ALTER TABLE refresh_tokens DROP COLUMN access_used_at;
ALTER TABLE refresh_tokens DROP COLUMN replaced_by;
ALTER TABLE users DROP CONSTRAINT users_token_generation_check;
ALTER TABLE users DROP COLUMN token_generation;
