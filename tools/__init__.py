"""The agent's tools: typed actions on a real local target, the operations database.

Each tool is a function with a pydantic argument model, a description for the model and
declared properties (``read_only``, ``always_asks``). Every tool can *preview* its effect
without acting (what it would change, and a fingerprint of the rows it touches) and
*execute* it once per idempotency key, refusing if the rows no longer match the preview
that was approved. See ``registry.py`` for the list, ``execution.py`` for the guarantees.
"""
