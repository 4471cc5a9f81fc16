"""offerpilot.envs"""
