-- The change log is written by the store itself from now on, one row per version a commit
-- made: several callers' batches merged into one transaction (group commit) each leave their
-- own versions, where a row trigger saw only the transaction's last one. Clears and restores
-- write their log rows explicitly too.
DROP TRIGGER slots_log_insert;
DROP TRIGGER slots_log_update;
