"""offerpilot.envs: the customer population simulator and its gymnasium / SB3 views."""

from gymnasium.envs.registration import register, registry

ENV_ID = "offerpilot/Retention-v0"
"""Bump the version whenever the simulator's dynamics change."""

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="offerpilot.envs.retention_env:RetentionEnv", disable_env_checker=False)
