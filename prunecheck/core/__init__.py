"""Bottom layer: errors, atomic file io and locks, views, corruption names; imports no other layer."""
