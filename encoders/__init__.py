"""offerpilot.encoders"""
