"""The flagship application's job types (characters, exports, imports, search, webhooks)."""
