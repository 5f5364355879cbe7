"""Accounts: sign-up, login data, sessions, profiles and invites."""
