"""Operations: sensors, quality gates, publication, CLI status, PostgreSQL storage."""
