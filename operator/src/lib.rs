//! The mcp-fleet operator (work in progress: see issue 6).
