"""The common-random-numbers baseline: each copy's advantage relative to the mean of its customer's other copies."""

from __future__ import annotations

import numpy as np
import pytest

from offerpilot.agents.paired_advantage import leave_one_out


def test_two_copies_give_each_other_their_advantage_as_baseline():
    advantages = np.array([[1.0, 2.0, 5.0, -1.0], [0.5, 0.0, 0.5, 3.0]])  # 2 steps, 2 customers x 2 copies
    expected = np.array([[1.0 - 5.0, 2.0 + 1.0, 5.0 - 1.0, -1.0 - 2.0], [0.0, -3.0, 0.0, 3.0]])
    np.testing.assert_array_equal(leave_one_out(advantages, 2), expected)


def test_leave_one_out_over_k_copies_and_one_copy_unchanged():
    rng = np.random.default_rng(0)
    advantages = rng.normal(size=(5, 12))  # 4 customers x 3 copies
    paired = leave_one_out(advantages, 3)
    grouped = advantages.reshape(5, 3, 4)
    for k in range(3):
        others = np.delete(grouped, k, axis=1).mean(axis=1)
        np.testing.assert_allclose(paired.reshape(5, 3, 4)[:, k], grouped[:, k] - others)
    np.testing.assert_allclose(paired.reshape(5, 3, 4).sum(axis=1), 0.0, atol=1e-12)  # copies of a customer sum to 0
    assert leave_one_out(advantages, 1) is advantages


def test_a_shared_luck_term_cancels_and_the_action_effect_stays():
    """Advantages = what the action did + luck shared by the copies + a little own noise: the baseline removes the
    shared luck, so the paired advantage tracks the action's effect far more closely."""
    rng = np.random.default_rng(1)
    customers, copies = 20_000, 2
    effect = rng.choice([-1.0, 1.0], size=(1, copies * customers))
    luck = np.tile(rng.normal(scale=10.0, size=(1, customers)), copies)
    advantages = effect + luck + rng.normal(scale=0.1, size=effect.shape)
    paired = leave_one_out(advantages, copies)
    assert np.corrcoef(advantages.ravel(), effect.ravel())[0, 1] < 0.15
    assert np.corrcoef(paired.ravel(), effect.ravel())[0, 1] > 0.65


@pytest.mark.parametrize("copies", [0, 5])
def test_train_config_refuses_copies_that_do_not_divide_the_slots(copies):
    from offerpilot.agents.train_config import TrainConfig

    with pytest.raises(ValueError, match="customer_copies must be >= 1 and divide n_envs"):
        TrainConfig(n_envs=1024, customer_copies=copies)
