SELECT set_config('role', 'postgres', false)
