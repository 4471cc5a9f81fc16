"""offerpilot.encoders: customer histories to embeddings, churn risk and predicted CLV.

Importing it registers the encoder with transformers' Auto classes.
"""

from offerpilot.encoders import modeling as _modeling  # noqa: F401  (registers the Auto classes)
