"""How ``offerpilot train`` trains a policy: one frozen config, from defaults, a YAML/JSON file and flags.

Precedence: dataclass defaults < config file < command-line flags. The resolved config is written beside the
run, so a run can be repeated (and resumed) from its folder alone.
"""

from __future__ import annotations

import json
import types
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from offerpilot.atomic import write_text_atomic
from offerpilot.envs.objective import DEFAULT_LAM
from offerpilot.errors import InputError

OBSERVATIONS = ("encoder", "raw", "latent")
"""What the policy sees: the raw features plus the customer encoder's features (default), the raw features
alone, or the raw features plus the simulator's latent state (``latent``: the oracle only)."""

LEARNING_RATE_SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a PPO run on the batched simulator (MaskablePPO: caps and eligibility are masks)."""

    total_timesteps: int = 6_000_000
    """Customer-decisions to train on (one per slot per rollout step)."""
    observation: str = "encoder"
    """One of ``OBSERVATIONS``."""
    latent_features: tuple[str, ...] | None = None
    """With ``observation="latent"``: the latent variables the oracle sees (``None``: all of
    :data:`offerpilot.envs.observers.LATENT_FEATURES`). An oracle that sees a subset measures what knowing it is worth;
    ``NAME@R2`` shows a stable trait through noise that leaves the share ``R2`` of its variance explained."""
    encoder: str | None = None
    """Folder of a trained customer encoder (``offerpilot encoder train``). ``None`` with ``observation="encoder"``:
    one is trained first on simulated histories of the same population and kept in the run folder."""
    population: str = "default"
    """Population preset name or JSON file (``offerpilot calibrate``)."""
    lam: float = DEFAULT_LAM
    """Trade-off between 30-day margin (0) and 365-day discounted margin, the CLV (1)."""
    reward: str = "expected"
    """``expected``: learn from each day's expected money given the customer's state and the offer (the same
    expected return as the drawn money, with the purchase and spend draws averaged out); ``realised``: from the
    drawn money. Evaluation always counts the drawn money."""
    discount_budget: float | None = None
    """Most discount money per customer over the decision period; ``None``: no budget. Enforced by a
    Lagrangian penalty on discounts whose multiplier rises while the budget is exceeded."""
    budget_learning_rate: float = 0.05
    """Step size of the budget multiplier per rollout, per unit of relative overspend."""
    n_envs: int = 1024
    """Customers simulated side by side (slots of the vectorised environment)."""
    n_steps: int | None = None
    """Decisions per slot in one rollout (``None``: whole episodes filling at least a decision period: 53 weekly
    decisions, or 11 episodes of 5 at ``lam`` 0, whose episode ends with the 30-day window, so nothing is
    bootstrapped); a rollout is ``n_envs * n_steps``."""
    customer_copies: int = 2
    """Copies of each customer trained side by side (common random numbers: the same traits and luck); with 2 or
    more, each copy's advantage is taken relative to the mean of its other copies', which removes the customer's
    traits and the luck of their year from the learning signal. Must divide ``n_envs``. 2 copies gained 1.27-1.51
    CLV per customer over no offer in three seeds where 1 gained 0.50-1.11 (README, "Reliability across seeds");
    1 is plain PPO."""
    batch_size: int = 8192
    """Minibatch size of the PPO update."""
    n_epochs: int = 10
    """Passes over each rollout. The effect of one weekly offer is small beside the noise of a customer's year,
    so the policy moves slowly: 10 epochs at ``learning_rate`` 1e-3 learn in 6 M steps what 4 at 3e-4 do not."""
    learning_rate: float = 1e-3
    learning_rate_schedule: str = "constant"
    """``constant``, or ``linear``: decays from ``learning_rate`` to 0 at ``total_timesteps``, so the last updates
    only polish the policy instead of moving it by as much as the first ones."""
    initial_none_probability: float | None = None
    """Probability of 'none' (sending nothing) in the untrained policy when every action is legal; ``None``: uniform
    over the legal actions. A message costs money and patience, so starting near "send nothing" instead of near
    uniform random offers (the worst baseline) leaves PPO less to unlearn."""
    init_policy: str | None = None
    """Folder of a saved policy (another run's ``best_policy``) whose actor-critic weights and observation normaliser
    training starts from; ``None``: a fresh network. A policy trained for one ``lam`` is a good start for a
    neighbouring one: the frontier's runs then need a fraction of the steps of a run from scratch."""
    gamma: float = 1.0
    """Per-decision discount of PPO. The reward already discounts money day by day, and the objective is its
    plain sum over the 365-day period, so 1 optimises exactly that."""
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.001
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value networks (separate networks, same widths). 64x64 learns
    better than 128x128 in the same steps here, and is faster."""
    seed: int = 0
    """Seeds the simulator, the network initialisation and the sampling of actions."""
    device: str = "auto"
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``."""
    threads: int | None = None
    """torch CPU threads (``None``: torch's default, about one per core). A seed gives bit-identical weights only
    at the same thread count, as parallel sums add in another order with another count; runs record the count."""
    eval_every: int = 500_000
    """Evaluate on validation customers every this many timesteps (0: never)."""
    eval_customers: int = 4000
    checkpoint_every: int = 500_000
    """Write a resumable checkpoint every this many timesteps (and at the end)."""

    def __post_init__(self) -> None:
        wrong = _type_problems(self)
        if wrong:  # the range checks below compare values, which needs the right types
            raise InputError("; ".join(wrong))
        problems = []
        if self.observation not in OBSERVATIONS:
            problems.append(f"observation must be one of {OBSERVATIONS}, got {self.observation!r}")
        if self.learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
            problems.append(f"learning_rate_schedule must be one of {LEARNING_RATE_SCHEDULES}, got {self.learning_rate_schedule!r}")
        if self.reward not in ("expected", "realised"):
            problems.append(f"reward must be 'expected' or 'realised', got {self.reward!r}")
        if not 0.0 <= self.lam <= 1.0:
            problems.append(f"lam must be in [0, 1], got {self.lam}")
        if self.discount_budget is not None and self.discount_budget < 0:
            problems.append(f"discount_budget must be >= 0, got {self.discount_budget}")
        for name in ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "eval_customers", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "seed", "learning_rate", "ent_coef", "vf_coef", "budget_learning_rate"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("clip_range", "max_grad_norm"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.batch_size == 1:
            problems.append("batch_size must be >= 2 (advantages are normalised per minibatch)")
        if self.customer_copies < 1 or self.n_envs % self.customer_copies:
            problems.append(f"customer_copies must be >= 1 and divide n_envs ({self.n_envs}), got {self.customer_copies}")
        if self.init_policy is not None and self.initial_none_probability is not None:
            problems.append("init_policy and initial_none_probability exclude each other (the start is the saved policy)")
        if self.initial_none_probability is not None and not 0.0 < self.initial_none_probability < 1.0:
            problems.append(f"initial_none_probability must be in (0, 1), got {self.initial_none_probability}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            problems.append("gamma and gae_lambda must be in [0, 1]")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not self.net_arch or any(int(w) < 1 for w in self.net_arch):
            problems.append(f"net_arch must be positive layer widths, got {self.net_arch}")
        if self.latent_features is not None:
            from offerpilot.envs.observers import LATENT_FEATURES, parse_latent_feature

            if self.observation != "latent":
                problems.append("latent_features applies to observation 'latent' (the oracle) only")
            if not self.latent_features:
                problems.append(f"latent_features must be a non-empty subset of {LATENT_FEATURES}, got []")
            for spec in self.latent_features:
                try:
                    parse_latent_feature(spec)
                except ValueError as e:
                    problems.append(f"latent_features: {e}")
        if problems:
            raise InputError("; ".join(problems))
        object.__setattr__(self, "net_arch", tuple(int(w) for w in self.net_arch))
        if self.latent_features is not None:
            object.__setattr__(self, "latent_features", tuple(self.latent_features))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """The config in a YAML or JSON file, with ``overrides`` (non-``None`` values) on top."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise InputError(f"{path}: cannot read the training config: {e}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a mapping of training options, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{path}: unknown training option(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**{**data, **{k: v for k, v in overrides.items() if v is not None}})
        except (TypeError, ValueError) as e:
            raise InputError(f"{path}: {e}") from None

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """This config with the non-``None`` ``overrides`` applied (validated again)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")



def _type_problems(config: TrainConfig) -> list[str]:
    """A line for every option whose value is not of its declared type (YAML and JSON lists count as tuples)."""
    hints = get_type_hints(TrainConfig)
    return [
        f"{f.name} must be {_type_name(hints[f.name])}, got {type(value).__name__} {value!r}"
        for f in fields(config)
        if not _fits(value := getattr(config, f.name), hints[f.name])
    ]


def _fits(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, h) for h in get_args(hint))
    if origin is tuple:  # tuple[X, ...]
        return isinstance(value, (tuple, list)) and all(_fits(v, get_args(hint)[0]) for v in value)
    if hint is type(None):
        return value is None
    if isinstance(value, bool):  # bool is an int to Python, never a count or a rate here
        return False
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(h) for h in get_args(hint))
    if origin is tuple:
        return "a list of " + {int: "integers", str: "names"}[get_args(hint)[0]]
    if hint is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "text"}.get(hint, getattr(hint, "__name__", str(hint)))
