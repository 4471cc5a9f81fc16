"""Evaluation in simulation: every policy on the same held-out customers, with tuned baselines and the oracles."""
