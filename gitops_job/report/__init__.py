"""Results as text, JSON and markdown: pure functions of what a run returns (already masked)."""
