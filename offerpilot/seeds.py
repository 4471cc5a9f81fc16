"""Which seeds draw which customers, so that no policy is chosen on the customers it is judged on.

Training runs draw from their own ``seed`` (and ``seed + steps done`` after a resume); validation, tuning and
the held-out evaluation cohort each have seeds of their own, far from small training seeds.
"""

VALIDATION_SEED_OFFSET = 1_000_003
"""Validation customers of a training run with seed ``s`` (best-policy selection) come from ``s + VALIDATION_SEED_OFFSET``."""


TUNING_SEEDS = (101, 102)
"""Seeds on which baselines are tuned and fitted."""
HELD_OUT_SEED = 2_000_003
"""Default seed of the held-out evaluation cohort of ``offerpilot evaluate``."""
SELECTION_SEED = 1_500_007
"""Validation customers on which ``offerpilot train --seeds K`` chooses among its K runs: the same customers for every
run, and none of them a training, tuning, held-out or per-run validation customer."""
OPE_TRUTH_SEED = 1_000_003
"""Customers of the simulated per-decision truth in ``scripts/ope_validation.py`` (its k-th pair: this + k). That study
trains no policy, so no validation customer of a training run is drawn there."""


def validation_seed(training_seed: int) -> int:
    """The seed of the validation customers of the training run seeded ``training_seed``."""
    return training_seed + VALIDATION_SEED_OFFSET
