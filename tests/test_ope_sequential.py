"""Trajectory OPE estimators and fitted-Q evaluation: hand-computed values on tiny trajectories of
different lengths, the on-policy identity, and a synthetic finite-horizon MDP whose target-policy value
and Q are computed exactly by dynamic programming."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.tree import DecisionTreeRegressor

from offerpilot.ope import FittedQEvaluation, PerDecisionIS, WeightedDoublyRobust, WeightedPDIS

GAMMA = 0.5
NAN = np.nan
# Three trajectories of lengths 3, 1 and 2; padding holds junk that must never be read.
MASK = np.array([[True, True, True], [True, False, False], [True, True, False]])
REWARD = np.array([[1.0, 2.0, 4.0], [3.0, 99.0, NAN], [2.0, 1.0, -7.0]])
PSCORE = np.array([[0.5, 0.5, 0.25], [0.5, 0.0, NAN], [1.0, 0.5, 0.0]])
TARGET_PROB = np.array([[1.0, 0.5, 0.5], [0.25, 5.0, NAN], [1.0, 1.0, NAN]])
# rho = [[2, 1, 2], [0.5], [1, 2]] -> cumulative w = [[2, 2, 4], [0.5, 0.5, 0.5], [1, 2, 2]] (frozen after the end)
Q_HAT = np.array([[1.0, 1.0, 2.0], [2.0, NAN, 5.0], [1.0, 0.0, NAN]])
V_HAT = np.array([[1.5, 2.0, 3.0], [1.0, 8.0, NAN], [2.0, 1.0, 9.0]])
LOG = (REWARD, PSCORE, TARGET_PROB, MASK)


def test_pdis_by_hand():
    # sum_t gamma^t w_t r_t per trajectory: 2*1 + 0.5*2*2 + 0.25*4*4 = 8; 0.5*3 = 1.5; 1*2 + 0.5*2*1 = 3
    pdis = PerDecisionIS(gamma=GAMMA)
    np.testing.assert_allclose(pdis.estimate_trajectory_values(*LOG), [8.0, 1.5, 3.0])
    assert pdis.estimate(*LOG) == pytest.approx((8 + 1.5 + 3) / 3)


def test_wpdis_by_hand():
    # step 0: (2*1 + 0.5*3 + 1*2) / (2 + 0.5 + 1); step 1: (2*2 + 0 + 2*1) / (2 + 0.5 + 2); step 2: 4*4 / (4 + 0.5 + 2)
    by_hand = 5.5 / 3.5 + GAMMA * 6 / 4.5 + GAMMA**2 * 16 / 6.5
    values = WeightedPDIS(gamma=GAMMA).estimate_trajectory_values(*LOG)
    assert values.mean() == pytest.approx(by_hand)
    # trajectory 1 contributes only at step 0, scaled by the mean weight there: 0.5 * 3 / (3.5 / 3)
    assert values[1] == pytest.approx(1.5 / (3.5 / 3))


def test_wdr_by_hand():
    # step t: sum_i w_it (r - q)_it / sum_i w_it + sum_i w_i,t-1 v_it / sum_i w_i,t-1
    step0 = (2 * 0 + 0.5 * 1 + 1 * 1) / 3.5 + (1.5 + 1.0 + 2.0) / 3
    step1 = (2 * 1 + 0.5 * 0 + 2 * 1) / 4.5 + (2 * 2 + 0.5 * 0 + 1 * 1) / 3.5
    step2 = (4 * 2 + 0.5 * 0 + 2 * 0) / 6.5 + (2 * 3 + 0.5 * 0 + 2 * 0) / 4.5
    by_hand = step0 + GAMMA * step1 + GAMMA**2 * step2
    assert WeightedDoublyRobust(gamma=GAMMA).estimate(*LOG, Q_HAT, V_HAT) == pytest.approx(by_hand)


def test_on_policy_pdis_and_wpdis_are_the_mean_discounted_return():
    rng = np.random.default_rng(0)
    n, horizon = 50, 6
    mask = np.arange(horizon) < rng.integers(1, horizon + 1, n)[:, None]
    reward = rng.normal(size=(n, horizon))
    prob = rng.uniform(0.05, 1.0, (n, horizon))
    discounted_return = np.where(mask, reward, 0.0) @ (0.9 ** np.arange(horizon))
    for estimator in (PerDecisionIS(gamma=0.9), WeightedPDIS(gamma=0.9)):
        np.testing.assert_allclose(estimator.estimate_trajectory_values(reward, prob, prob, mask), discounted_return)


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"pscore": ((0, 1), 0.0)}, ["pscore", "1 of 9 (trajectory, step) entries", "(0, 1)"]),
        ({"target_prob": ((2, 0), 1.5)}, ["target_prob", "(2, 0)"]),
        ({"reward": ((0, 2), NAN)}, ["reward", "(0, 2)"]),
        ({"q_hat": ((2, 1), np.inf)}, ["q_hat", "(2, 1)"]),
        ({"mask": ((1, 2), True)}, ["mask", "1 of 3 rows", "real step after padding", "rows 1"]),
    ],
)
def test_bad_inputs_raise_naming_entries(changes, fragments):
    args = {"reward": REWARD, "pscore": PSCORE, "target_prob": TARGET_PROB, "mask": MASK, "q_hat": Q_HAT, "v_hat": V_HAT}
    for key, (entry, value) in changes.items():
        args[key] = args[key].copy()
        args[key][entry] = value
    with pytest.raises(ValueError) as info:
        WeightedDoublyRobust(gamma=GAMMA).estimate(**args)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_bad_shapes_and_missing_models_raise():
    with pytest.raises(ValueError, match=r"pscore has shape \(3, 2\), expected \(3, 3\)"):
        PerDecisionIS().estimate(REWARD, PSCORE[:, :2], TARGET_PROB, MASK)
    with pytest.raises(ValueError, match="wdr needs q_hat and v_hat"):
        WeightedDoublyRobust().estimate(*LOG)
    with pytest.raises(ValueError, match="gamma must be in"):
        PerDecisionIS(gamma=1.5)


# A finite-horizon MDP: 3 states, 2 actions, horizon 4, and a per-step chance that the customer leaves.
N_STATES, N_ACTIONS, HORIZON, MDP_GAMMA = 3, 2, 4, 0.9
_rng = np.random.default_rng(2024)
INITIAL = np.array([0.5, 0.3, 0.2])
TRANSITION = _rng.dirichlet(np.full(N_STATES, 0.3), (N_STATES, N_ACTIONS))  # (s, a, s')
MEAN_REWARD = _rng.uniform(-1.0, 2.0, (N_STATES, N_ACTIONS))
LEAVE = _rng.uniform(0.05, 0.3, (N_STATES, N_ACTIONS))
MU = _rng.dirichlet(np.full(N_ACTIONS, 5.0), (HORIZON, N_STATES))  # logging (t, s, a), near uniform
PI = _rng.dirichlet(np.full(N_ACTIONS, 0.7), (HORIZON, N_STATES))  # target (t, s, a)
REWARD_NOISE = 0.5


def exact_q(policy: np.ndarray) -> np.ndarray:
    """Q_t(s, a) of ``policy`` (horizon, states, actions) by backward induction:
    Q_t(s, a) = R(s, a) + gamma * (1 - leave(s, a)) * sum_s' P(s' | s, a) sum_a' policy_{t+1}(a' | s') Q_{t+1}(s', a')."""
    q = np.zeros((HORIZON, N_STATES, N_ACTIONS))
    next_v = np.zeros(N_STATES)
    for t in reversed(range(HORIZON)):
        q[t] = MEAN_REWARD + MDP_GAMMA * (1 - LEAVE) * (TRANSITION @ next_v)
        next_v = (policy[t] * q[t]).sum(axis=1)
    return q


def exact_value(policy: np.ndarray) -> float:
    return float(INITIAL @ (policy[0] * exact_q(policy)[0]).sum(axis=1))


Q_TRUE = exact_q(PI)
TRUE_VALUE = exact_value(PI)


def categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of probs (n, k) by inverse CDF."""
    return np.minimum((probs.cumsum(axis=1) < rng.random((probs.shape[0], 1))).sum(axis=1), probs.shape[1] - 1)


def mdp_log(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n trajectories under MU; padding is NaN (actions -1) so any read of it would show."""
    state = np.full((n, HORIZON), -1)
    action = np.full((n, HORIZON), -1)
    reward, pscore, target_prob = (np.full((n, HORIZON), np.nan) for _ in range(3))
    mask = np.zeros((n, HORIZON), bool)
    s, alive = categorical(np.tile(INITIAL, (n, 1)), rng), np.ones(n, bool)
    for t in range(HORIZON):
        a = categorical(MU[t, s], rng)
        mask[:, t] = alive
        state[alive, t], action[alive, t] = s[alive], a[alive]
        reward[alive, t] = MEAN_REWARD[s, a][alive] + REWARD_NOISE * rng.normal(size=alive.sum())
        pscore[alive, t], target_prob[alive, t] = MU[t, s, a][alive], PI[t, s, a][alive]
        alive &= rng.random(n) >= LEAVE[s, a]
        s = categorical(TRANSITION[s, a], rng)
    features = np.concatenate(
        [np.eye(N_STATES)[np.maximum(state, 0)], np.broadcast_to(np.eye(HORIZON), (n, HORIZON, HORIZON))], axis=2
    )
    target_probs = PI[np.arange(HORIZON), np.maximum(state, 0)]  # (n, horizon, actions); padding rows unused
    return dict(
        features=features, state=state, action=action, reward=reward, pscore=pscore,
        target_prob=target_prob, target_probs=target_probs, mask=mask,
    )


def tabular_fqe() -> FittedQEvaluation:
    # A fully grown tree on one-hot (state, time, action) is a table: each leaf averages one cell.
    return FittedQEvaluation(N_ACTIONS, MDP_GAMMA, n_iterations=HORIZON, estimator=DecisionTreeRegressor())


def test_mdp_has_variable_lengths_and_a_nontrivial_target():
    log = mdp_log(2000, np.random.default_rng(0))
    lengths = log["mask"].sum(axis=1)
    assert lengths.min() == 1 and lengths.max() == HORIZON
    assert abs(TRUE_VALUE - exact_value(MU)) > 0.1  # the logged returns' mean is not the answer


def test_pdis_is_unbiased_against_dynamic_programming():
    rng = np.random.default_rng(0)
    pdis = PerDecisionIS(gamma=MDP_GAMMA)
    estimates = []
    for _ in range(300):
        log = mdp_log(200, rng)
        estimates.append(pdis.estimate(log["reward"], log["pscore"], log["target_prob"], log["mask"]))
    estimates = np.array(estimates)
    assert abs(estimates.mean() - TRUE_VALUE) < 3 * estimates.std(ddof=1) / np.sqrt(estimates.size)


def test_fqe_recovers_q_on_a_tabular_mdp():
    log = mdp_log(50_000, np.random.default_rng(1))
    fqe = tabular_fqe().fit(log["features"], log["action"], log["reward"], log["mask"], log["target_probs"])
    grid = np.concatenate(
        [np.repeat(np.eye(N_STATES)[None], HORIZON, axis=0), np.repeat(np.eye(HORIZON)[:, None], N_STATES, axis=1)],
        axis=2,
    )  # (horizon, states, states + horizon)
    np.testing.assert_allclose(fqe.predict(grid), Q_TRUE, atol=0.1)
    interval = fqe.estimate_interval(log["features"], log["target_probs"], log["mask"], n_bootstrap=200)
    assert interval.mean == pytest.approx(TRUE_VALUE, abs=0.03)
    assert interval.low < interval.mean < interval.high
    q_hat, v_hat = fqe.q_and_v(log["features"], log["action"], log["target_probs"], log["mask"])
    real = log["mask"]
    t, s, a = np.nonzero(real)[1], log["state"][real], log["action"][real]
    np.testing.assert_allclose(q_hat[real], Q_TRUE[t, s, a], atol=0.1)
    np.testing.assert_allclose(v_hat[real], (PI[t, s] * Q_TRUE[t, s]).sum(axis=1), atol=0.1)
    assert np.all(q_hat[~real] == 0) and np.all(v_hat[~real] == 0)


def test_wdr_with_fqe_beats_pdis_in_rmse():
    rng = np.random.default_rng(9)
    pdis, wdr = PerDecisionIS(gamma=MDP_GAMMA), WeightedDoublyRobust(gamma=MDP_GAMMA)
    errors = {"pdis": [], "wdr": []}
    for _ in range(40):
        log = mdp_log(200, rng)
        logged = (log["reward"], log["pscore"], log["target_prob"], log["mask"])
        fqe = tabular_fqe().fit(log["features"], log["action"], log["reward"], log["mask"], log["target_probs"])
        q_hat, v_hat = fqe.q_and_v(log["features"], log["action"], log["target_probs"], log["mask"])
        errors["pdis"].append(pdis.estimate(*logged) - TRUE_VALUE)
        errors["wdr"].append(wdr.estimate(*logged, q_hat, v_hat) - TRUE_VALUE)
    rmse = {name: float(np.sqrt(np.mean(np.square(e)))) for name, e in errors.items()}
    assert rmse["wdr"] < rmse["pdis"], rmse


def test_trajectory_intervals_cover_the_truth():
    rng = np.random.default_rng(13)
    estimators = (PerDecisionIS(gamma=MDP_GAMMA), WeightedPDIS(gamma=MDP_GAMMA))
    covered = np.zeros(len(estimators))
    for replicate in range(60):
        log = mdp_log(300, rng)
        for k, estimator in enumerate(estimators):
            interval = estimator.estimate_interval(
                log["reward"], log["pscore"], log["target_prob"], log["mask"], n_bootstrap=300, random_state=replicate
            )
            covered[k] += interval.low <= TRUE_VALUE <= interval.high
    assert np.all(covered >= 0.85 * 60), covered
