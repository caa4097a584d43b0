-- Emails are compared in one spelling (docs/api.md#authentication-and-authorisation): trimmed, in
-- Unicode NFC, lower-cased (`Email::normalise` in crates/domain). Rows written before NFC was part
-- of the rule were already trimmed and lower-cased by the application, so NFC is all they can lack;
-- PostgreSQL's own `normalize` supplies it (it needs a UTF8 database, which Orderly's always are).
--
-- Two rows that become one address cannot both stay, and which account is the real one is the
-- operator's decision, not a migration's: the migration stops, changing nothing, and names the
-- users involved (docs/operations.md, "Upgrading").

DO $$
DECLARE
    clashes TEXT;
BEGIN
    SELECT string_agg(ids, '; ') INTO clashes
    FROM (
        SELECT string_agg(id, ', ' ORDER BY created_at, id) AS ids
        FROM users
        GROUP BY normalize(email, NFC)
        HAVING count(*) > 1
    ) AS clashing;
    IF clashes IS NOT NULL THEN
        RAISE EXCEPTION 'normalise_emails: these users have emails that are one address once Unicode-normalised (NFC), which would merge their accounts: %. Give all but one user of each group another email, then start Orderly again (docs/operations.md, "Upgrading").', clashes;
    END IF;
END
$$;

-- A new version, so that caches holding the old spelling revalidate (ETags follow the version).
UPDATE users
SET email = normalize(email, NFC), version = version + 1
WHERE email IS NOT NFC NORMALIZED;
