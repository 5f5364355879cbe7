"""OAuth 2.0 for client apps: registered apps, authorization codes, access tokens, scopes."""
