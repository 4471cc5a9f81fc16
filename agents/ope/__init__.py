"""Off-policy evaluation: what a policy would have earned on logged decisions."""
