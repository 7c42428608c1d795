"""scratch."""
