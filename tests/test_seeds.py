"""Seeds by purpose: the demo's logged customers, its off-policy truth and every training, validation, tuning and
held-out cohort are drawn from different seeds."""

from offerpilot.app.demo import DemoConfig
from offerpilot.seeds import HELD_OUT_SEED, SELECTION_SEED, TUNING_SEEDS, logs_seed, truth_seed, validation_seed


def test_the_demo_logs_and_truth_share_no_seed_with_training_or_evaluation():
    config = DemoConfig()
    demo_seeds = range(10)
    # A training run seeded s draws from s, and from s + steps done after each resume (checkpoints every eval_every).
    resumes = range(0, config.ppo_timesteps + 1, config.eval_every)
    training = {s + done for s in demo_seeds for done in resumes}
    others = training | {validation_seed(s) for s in demo_seeds} | {HELD_OUT_SEED, SELECTION_SEED, *TUNING_SEEDS}
    logs = {logs_seed(s) for s in demo_seeds}
    truths = {truth_seed(s) for s in demo_seeds}
    assert len(logs) == len(truths) == len(demo_seeds)
    assert not logs & others
    assert not truths & others
    assert not logs & truths
