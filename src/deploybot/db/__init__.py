"""Storage: SQLModel tables, the engine/session factory and migrations."""
