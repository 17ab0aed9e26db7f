"""The live stream at ``/trading/stream``: a user's outbox events as WebSocket frames (ADR 0007)."""
