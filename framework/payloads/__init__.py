"""Payloads: what workers generate (``base``: the kind interface; ``randint``, ``array``, ``rollout``:
the built-in kinds; ``seeding``: per-worker streams; ``transforms``: what a worker applies before
forwarding)."""
