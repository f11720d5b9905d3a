"""The registry's lifecycle: where the storage goes (accounting), what may go (retention rules)."""
