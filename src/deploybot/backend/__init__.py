"""The backend seam: what every transport calls (see `protocol.py`)."""

from deploybot.backend.protocol import Backend

__all__ = ["Backend"]
