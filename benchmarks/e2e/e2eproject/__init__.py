"""A minimal Django project for loopsafe's end-to-end benchmark: SQLite, async login, /health."""
