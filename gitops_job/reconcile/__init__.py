"""Everything after render: validate, plan, apply, prune, wait, and the recipes that run them; what a run returns."""
