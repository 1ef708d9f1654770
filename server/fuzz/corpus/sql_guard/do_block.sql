DO $$ BEGIN PERFORM pg_sleep(10); END $$
