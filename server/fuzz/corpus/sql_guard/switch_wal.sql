SELECT pg_switch_wal()
