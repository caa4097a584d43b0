-- Nothing to undo: the spelling each email had before is not kept, and the normalised one is
-- the same address.
SELECT 1;
