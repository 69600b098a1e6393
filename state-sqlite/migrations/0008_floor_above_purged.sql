-- A scope floor is where the absent slots of a purged scope read. It was the highest version
-- purged, so the latest token read before a purge still matched the purged slot once. From
-- now on it is one above that version (the stores' purges write MAX(version) + 1); raising
-- every floor already kept by one gives stores purged before this migration the same rule.
UPDATE scope_floors SET floor = floor + 1;
