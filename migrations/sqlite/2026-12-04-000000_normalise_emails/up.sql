-- Emails are compared in one spelling (docs/api.md#authentication-and-authorisation): trimmed, in
-- Unicode NFC, lower-cased. SQLite has no Unicode normaliser: `orderly_normalise_email` is the
-- domain's own rule (`Email::normalise` in crates/domain), registered on every connection Orderly
-- opens (crates/persistence/src/connection.rs). Run these migrations through Orderly, not a generic
-- tool, which would not know the function.
--
-- Two rows that become one address cannot both stay, and which account is the real one is the
-- operator's decision, not a migration's: the migration stops and changes nothing
-- (docs/operations.md, "Upgrading"). SQLite can raise an error only from a trigger, hence the
-- temporary table whose trigger refuses any row: one row is inserted per clashing address.

CREATE TEMP TABLE normalise_emails_clashes (email TEXT NOT NULL);

CREATE TEMP TRIGGER normalise_emails_refuse_clashes BEFORE INSERT ON normalise_emails_clashes
BEGIN
    SELECT RAISE(ABORT, 'normalise_emails: two or more users have emails that are one address once Unicode-normalised (NFC), which would merge their accounts; docs/operations.md, "Upgrading", shows how to find them. Give all but one user of each group another email, then start Orderly again.');
END;

INSERT INTO normalise_emails_clashes (email)
SELECT orderly_normalise_email(email) FROM users GROUP BY 1 HAVING count(*) > 1;

DROP TRIGGER normalise_emails_refuse_clashes;
DROP TABLE normalise_emails_clashes;

-- A new version, so that caches holding the old spelling revalidate (ETags follow the version).
UPDATE users
SET email = orderly_normalise_email(email), version = version + 1
WHERE email <> orderly_normalise_email(email);
