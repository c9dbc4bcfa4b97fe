"""Queue ingest: normalising notification messages and registering the objects they name."""
