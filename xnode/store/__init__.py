"""Storage: the SQLite database, its migrations and one SQL module per aggregate."""
