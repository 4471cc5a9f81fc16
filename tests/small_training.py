"""The small PPO configuration the tests train, so that one change reaches them all."""

SMALL_TRAINING = {"n_envs": 64, "n_steps": 8, "total_timesteps": 1024, "batch_size": 256, "net_arch": (32, 32), "eval_every": 512,
                  "eval_customers": 200, "checkpoint_every": 512, "seed": 1}
"""Two 512-decision rollouts of 64 customers: a real run folder (policies, checkpoint, learning curve) in a few seconds."""


def small_training(**changes: object) -> dict[str, object]:
    """``SMALL_TRAINING`` with ``changes``: the options of ``TrainConfig`` a test needs otherwise."""
    return {**SMALL_TRAINING, **changes}
