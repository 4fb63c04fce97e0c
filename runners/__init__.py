"""Model execution and batching: knows float32 arrays, not HTTP or Pydantic."""
