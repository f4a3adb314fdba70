"""Database: typed SQLAlchemy models, engine and sessions, migrations."""
