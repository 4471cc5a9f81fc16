"""offerpilot.agents"""
