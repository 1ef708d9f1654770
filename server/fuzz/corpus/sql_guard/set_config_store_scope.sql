SELECT set_config('mcpfleet.store_scope', '1,2,3,4,5,6,7,8', true)
