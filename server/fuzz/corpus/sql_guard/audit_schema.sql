SELECT * FROM audit.tool_calls
