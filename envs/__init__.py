"""offerpilot.envs: the customer population simulator and its gymnasium / SB3 views."""

from gymnasium.envs.registration import register, registry

ENV_ID = "offerpilot/Retention-v1"
"""Bump the version whenever the simulator's dynamics change (v1: customers who drop out stay to the horizon)."""

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="offerpilot.envs.retention_env:RetentionEnv", disable_env_checker=False)
