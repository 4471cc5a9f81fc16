"""``offerpilot train``: MaskablePPO on the batched simulator, with evaluation, checkpoints and resume.

A run folder holds::

    config.json        the resolved TrainConfig (a resumed run reads it back)
    encoder/model      the customer encoder, when one was trained for the run
    tensorboard/       PPO losses, rollout rewards, validation objective, budget multiplier
    eval.csv           the learning curve: validation objective, CLV and 30-day margin with 95 % CIs
    checkpoint/        resumable state (weights, optimizer, normaliser, counters), replaced atomically; its
                       state.json holds the sha256 of every other file and its own, checked before a resume
    best_policy/       the policy with the best validation objective so far
    policy/            the policy at the end of training

Validation customers are drawn with seeds of their own (see ``seeds.py``), never those of training or of
the held-out evaluation, so choosing the best policy on them leaks nothing into the final comparison.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize
from tqdm.auto import tqdm

from offerpilot.agents.discount_budget import DiscountBudget
from offerpilot.agents.paired_advantage import leave_one_out
from offerpilot.agents.ppo_checkpoint import restore_checkpoint, verify_checkpoint, write_checkpoint
from offerpilot.agents.ppo_policy import ObservationNormalizer, PPOPolicy, build_network, hidden_widths
from offerpilot.agents.train_config import TrainConfig
from offerpilot.agents.trained_run import POLICY_FOLDERS
from offerpilot.atomic import WriteError, atomic_directory, restore_interrupted, write_text_atomic
from offerpilot.encoders.encoder_observer import EncoderObserver
from offerpilot.envs.objective import ObjectiveConfig
from offerpilot.envs.observers import latent_observer_name
from offerpilot.envs.policy_evaluation import PolicyEvaluation, evaluate_policy
from offerpilot.envs.presets import load_population
from offerpilot.envs.simulator import PopulationSimulator, SimulatorConfig
from offerpilot.envs.vec_env import RetentionVecEnv
from offerpilot.errors import InputError
from offerpilot.seeds import validation_seed
from offerpilot.torch_threads import torch_threads

EVAL_COLUMNS = ("timesteps", "objective", "objective_low", "objective_high", "clv", "clv_low", "clv_high", "r_short", "offers_sent", "discount_spend")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device auto or cpu")
    return device


def simulator_config(config: TrainConfig) -> SimulatorConfig:
    """The simulated business a run trains on: its population, ``lam``, and the oracle's latent view if asked."""
    return SimulatorConfig(
        population=load_population(config.population),
        objective=ObjectiveConfig(lam=config.lam),
        observer=latent_observer_name(config.latent_features) if config.observation == "latent" else "raw",
    )


def check_inputs(config: TrainConfig) -> None:
    """Refuse a run whose population, encoder or starting policy cannot be read, before anything is written.

    :raises FileNotFoundError: the encoder or starting policy folder is missing.
    :raises ValueError: the population is neither a preset nor a valid population JSON.
    """
    simulator_config(config)
    for name in ("encoder", "init_policy"):
        folder = getattr(config, name)
        if folder is not None and not Path(folder).is_dir():
            raise FileNotFoundError(f"{name} {folder}: no such folder")


def encoder_observer(config: TrainConfig, run_dir: Path, progress: bool = True) -> EncoderObserver:
    """The encoder observer of a run with ``observation="encoder"`` (trains and keeps an encoder if none is given)."""
    from offerpilot.encoders.simulated import train_encoder_on_simulation

    model_dir = Path(config.encoder) if config.encoder else run_dir / "encoder" / "model"
    if not config.encoder and not model_dir.is_dir():
        train_encoder_on_simulation(simulator_config(config), run_dir / "encoder", seed=config.seed, progress=progress)
    return EncoderObserver.from_pretrained(model_dir, simulator_config(config).catalog)


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run put its policies, and its last validation score."""

    run_dir: Path
    num_timesteps: int
    last_evaluation: PolicyEvaluation | None

    @property
    def policy_dir(self) -> Path:
        return self.run_dir / POLICY_FOLDERS["final"]

    @property
    def best_policy_dir(self) -> Path:
        """The best policy on validation customers (the final one if no evaluation ran)."""
        best = self.run_dir / POLICY_FOLDERS["best"]
        return best if best.is_dir() else self.policy_dir


def train_ppo(config: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or, with ``resume``, continue) a PPO policy in ``run_dir``; see the module docstring.

    :raises FileExistsError: ``run_dir`` already holds a run and ``resume`` is false.
    :raises FileNotFoundError: ``resume`` without a checkpoint in ``run_dir``.
    :raises CheckpointError: ``resume`` from a damaged checkpoint (nothing is written).
    :raises WriteError: a file of the run could not be written (the previous checkpoint stays in place).
    """
    run_dir = Path(run_dir)
    checkpoint = run_dir / "checkpoint"
    restore_interrupted(checkpoint)
    if resume and not (checkpoint / "state.json").is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from (expected {checkpoint}/state.json)")
    if not resume and (checkpoint.exists() or (run_dir / POLICY_FOLDERS["final"]).exists()):
        raise FileExistsError(f"{run_dir} already holds a training run; pass --resume to continue it, or choose another output folder")
    state = verify_checkpoint(checkpoint) if resume else {}  # before anything is written: a damaged checkpoint changes nothing
    check_inputs(config)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(e.errno, e.strerror or str(e), str(run_dir)) from e
    config.save(run_dir / "config.json")
    with torch_threads(config.threads):
        return _train(config, run_dir, checkpoint, state, resume, progress)


def _train(config: TrainConfig, run_dir: Path, checkpoint: Path, state: dict[str, Any], resume: bool, progress: bool) -> TrainResult:
    """The body of :func:`train_ppo` once the run folder is ready and torch's thread count set."""
    device = resolve_device(config.device)
    observer = encoder_observer(config, run_dir, progress) if config.observation == "encoder" else None
    done_steps = int(state.get("num_timesteps", 0))
    env = RetentionVecEnv(config.n_envs, simulator_config(config), seed=config.seed + done_steps, encoder=observer, expected_reward=config.reward == "expected", copies=config.customer_copies)
    episode = env.sim.config.n_reward_decisions
    n_steps = config.n_steps or episode * -(-env.sim.config.n_decisions // episode)  # whole episodes, at least a period
    budget = DiscountBudget(env, config.discount_budget, config.budget_learning_rate, state.get("budget_multiplier", 0.0)) if config.discount_budget is not None else None
    venv = VecNormalize(budget or env, norm_obs=True, norm_reward=True, gamma=config.gamma, clip_obs=10.0)
    model = MaskablePPO(
        "MlpPolicy",
        venv,
        learning_rate=learning_rate_schedule(config),
        n_steps=n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs={"net_arch": {"pi": list(config.net_arch), "vf": list(config.net_arch)}},
        tensorboard_log=str(run_dir / "tensorboard"),
        seed=config.seed + done_steps,
        device=device,
    )
    if resume:
        restore_checkpoint(model, venv, checkpoint, state)
    elif config.init_policy is not None:
        _start_from(model, venv, Path(config.init_policy), env, observer)
    elif config.initial_none_probability is not None:
        prefer_none(model.policy, config.initial_none_probability)
    monitor = _TrainingMonitor(config, run_dir, env, venv, budget, observer, state, progress)
    model.learn(config.total_timesteps - done_steps, callback=monitor, tb_log_name="ppo", reset_num_timesteps=not resume)
    monitor.finish()
    return TrainResult(run_dir, model.num_timesteps, monitor.last_evaluation)


def prefer_none(network: torch.nn.Module, probability: float) -> None:
    """Shift the untrained actor's 'none' logit so that 'none' has ``probability`` when all actions are legal (SB3
    initialises the action layer near zero, so the other actions stay about equally likely)."""
    n_actions = int(network.action_space.n)
    with torch.no_grad():
        network.action_net.bias[0] += math.log(probability * (n_actions - 1) / (1.0 - probability))


def learning_rate_schedule(config: TrainConfig) -> float | Callable[[float], float]:
    """SB3's learning rate: a constant, or a function of the share of ``total_timesteps`` still to train (1 -> 0)."""
    if config.learning_rate_schedule == "constant":
        return config.learning_rate
    return lambda remaining: config.learning_rate * remaining


def observed_features(env: RetentionVecEnv, observer: EncoderObserver | None) -> tuple[str, ...]:
    """The names of what a run's policy reads: the simulator's features, then the encoder's if any."""
    return env.sim.observer.feature_names + (observer.feature_names if observer is not None else ())


def _start_from(model: MaskablePPO, venv: VecNormalize, folder: Path, env: RetentionVecEnv, observer: EncoderObserver | None) -> None:
    """Weights and observation normaliser of the saved policy in ``folder``, after checking it reads the same
    features and chooses among the same offers with the same network shape.

    :raises ValueError: naming what differs.
    """
    saved = PPOPolicy.load(folder, device=str(model.device))
    names = observed_features(env, observer)
    if saved.feature_names != names:
        raise InputError(f"{folder}: init policy reads other features than this run ({len(saved.feature_names)} vs {len(names)}: "
                         "train with the same --observation, --latent-features and --encoder)")
    if saved.action_ids != env.sim.catalog.ids:
        raise InputError(f"{folder}: init policy chooses among offers {list(saved.action_ids)}, this run's catalog has {list(env.sim.catalog.ids)}")
    arch = hidden_widths(model.policy)
    if saved.net_arch != arch:
        raise InputError(f"{folder}: init policy has layers {list(saved.net_arch)}, this run {list(arch)} (set --net-arch to match)")
    model.policy.load_state_dict(saved.network.state_dict())
    venv.obs_rms.mean, venv.obs_rms.var = saved.normalizer.mean.copy(), saved.normalizer.var.copy()
    venv.obs_rms.count = float(saved.metadata.get("num_timesteps", 1e6))  # the statistics move as slowly as where they stopped


class _TrainingMonitor(BaseCallback):
    """Progress bar, budget multiplier updates, periodic validation and checkpoints, final policies."""

    def __init__(self, config: TrainConfig, run_dir: Path, env: RetentionVecEnv, venv: VecNormalize, budget: DiscountBudget | None, observer: EncoderObserver | None, state: dict[str, Any], progress: bool) -> None:
        super().__init__()
        self.config, self.run_dir, self.env, self.venv, self.budget, self.observer = config, run_dir, env, venv, budget, observer
        self.best = state.get("best_objective") or -math.inf
        self.history: list[dict[str, float]] = state.get("eval_history", [])
        self.next_eval = state.get("next_eval", config.eval_every)
        self.next_checkpoint = state.get("next_checkpoint", config.checkpoint_every)
        self.last_evaluation: PolicyEvaluation | None = None
        self.validation_sim = PopulationSimulator(env.sim.config)
        self.bar = tqdm(total=config.total_timesteps, initial=state.get("num_timesteps", 0), desc="training PPO", unit="step", unit_scale=True, disable=not progress)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        """After SB3 computed the rollout's advantages (and value targets), before the update."""
        buffer = self.model.rollout_buffer
        buffer.advantages[:] = leave_one_out(buffer.advantages, self.config.customer_copies)
        self.bar.update(self.num_timesteps - self.bar.n)
        if self.budget is not None:
            spend = self.budget.update()
            self.logger.record("budget/multiplier", self.budget.multiplier)
            if spend is not None:
                self.logger.record("budget/discount_per_customer", spend)

    def _on_rollout_start(self) -> None:
        """Runs after the previous rollout's update: the weights here are the ones a checkpoint should keep."""
        if self.config.eval_every and self.num_timesteps >= self.next_eval:
            self._evaluate()
            self.next_eval += self.config.eval_every * max(1, (self.num_timesteps - self.next_eval) // self.config.eval_every + 1)
        if self.config.checkpoint_every and self.num_timesteps >= self.next_checkpoint:
            self.next_checkpoint += self.config.checkpoint_every * max(1, (self.num_timesteps - self.next_checkpoint) // self.config.checkpoint_every + 1)
            self._save_checkpoint()

    def finish(self) -> None:
        """After the last update: a final validation, checkpoint and ``policy/``."""
        if self.config.eval_every and (not self.history or self.history[-1]["timesteps"] < self.num_timesteps):
            self._evaluate()
            self.next_eval = self.num_timesteps + self.config.eval_every  # a resumed run does not evaluate these weights again
        self._save_checkpoint()
        with atomic_directory(self.run_dir / POLICY_FOLDERS["final"]) as tmp:
            self.current_policy().save(tmp)
        self.bar.close()

    def current_policy(self) -> PPOPolicy:
        """The network now, with a frozen copy of the observation normaliser, as a :class:`PPOPolicy`."""
        rms = self.venv.obs_rms
        names = observed_features(self.env, self.observer)
        metadata = {
            "observation": self.config.observation,
            "latent_features": None if self.config.latent_features is None else list(self.config.latent_features),
            "encoder": str(Path(self.config.encoder).resolve()) if self.config.encoder else ("encoder/model" if self.observer is not None else None),
            "lam": self.config.lam,
            "population": self.config.population,
            "num_timesteps": int(self.num_timesteps),
            "torch_threads": torch.get_num_threads(),
            "train_config": self.config.to_dict(),
        }
        normalizer = ObservationNormalizer(rms.mean.copy(), rms.var.copy(), float(self.venv.clip_obs), float(self.venv.epsilon))
        return PPOPolicy(_cpu_copy(self.model.policy), normalizer, names, self.env.sim.catalog.ids, metadata)

    def _evaluate(self) -> None:
        evaluation = evaluate_policy(
            self.validation_sim, self.current_policy(), self.config.eval_customers, validation_seed(self.config.seed), deterministic=True, encoder=self.observer
        )
        self.last_evaluation = evaluation
        row = {
            "timesteps": int(self.num_timesteps),
            "objective": evaluation.objective.mean,
            "objective_low": evaluation.objective.low,
            "objective_high": evaluation.objective.high,
            "clv": evaluation.clv.mean,
            "clv_low": evaluation.clv.low,
            "clv_high": evaluation.clv.high,
            "r_short": evaluation.r_short.mean,
            "offers_sent": evaluation.offers_sent.mean,
            "discount_spend": evaluation.discount_spend.mean,
        }
        self.history.append(row)
        for key in ("objective", "clv", "r_short", "offers_sent", "discount_spend"):
            self.logger.record(f"eval/{key}", row[key])
        self.bar.set_postfix(objective=f"{evaluation.objective.mean:.2f}", clv=f"{evaluation.clv.mean:.2f}")
        text = io.StringIO()
        writer = csv.DictWriter(text, EVAL_COLUMNS)
        writer.writeheader()
        writer.writerows(self.history)
        write_text_atomic(self.run_dir / "eval.csv", text.getvalue())
        if evaluation.objective.mean > self.best:
            self.best = evaluation.objective.mean
            with atomic_directory(self.run_dir / POLICY_FOLDERS["best"]) as tmp:
                self.current_policy().save(tmp)

    def _save_checkpoint(self) -> None:
        state = {
            "num_timesteps": int(self.num_timesteps),
            "n_updates": int(self.model._n_updates),
            "obs_count": float(self.venv.obs_rms.count),
            "ret_rms": {"mean": float(self.venv.ret_rms.mean), "var": float(self.venv.ret_rms.var), "count": float(self.venv.ret_rms.count)},
            "budget_multiplier": self.budget.multiplier if self.budget is not None else 0.0,
            "best_objective": self.best if math.isfinite(self.best) else None,
            "eval_history": self.history,
            "next_eval": self.next_eval,
            "next_checkpoint": self.next_checkpoint,
        }
        write_checkpoint(self.run_dir / "checkpoint", self.current_policy(), self.model.policy.optimizer, state)


def _cpu_copy(network: torch.nn.Module) -> torch.nn.Module:
    """A CPU copy of the actor-critic, so evaluation and saving never disturb training on a GPU. The copy's
    throwaway initialisation runs on a forked RNG: training draws the same numbers however often it evaluates."""
    n_features = network.observation_space.shape[0]
    arch = hidden_widths(network)
    with torch.random.fork_rng(devices=[]):
        copy = build_network(n_features, int(network.action_space.n), arch)
    copy.load_state_dict({k: v.detach().cpu() for k, v in network.state_dict().items()})
    return copy
