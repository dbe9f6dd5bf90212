"""Which pages a run computes: page-id iteration, topics below their minimum, or an explicit list."""
