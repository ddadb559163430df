"""The Invocation: what a client POSTs to wake an agent.

Owns: the ``{"inputEventId", "sessionName"}`` body shape (§1.2 of the protocol notes).
These are the only two fields the JS SDK's ``Invocation.toJSON`` emits; everything else
the agent needs is read off the channel. Extra fields in an HTTP body are the endpoint's
business (they may be passed to the graph); the model ignores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import InvalidInvocationError

__all__ = ["Invocation"]

_MAX_ID = 1024


class Invocation(BaseModel):
    """Points an agent at the input that triggers a run.

    Example:
        >>> inv = Invocation.from_json({"inputEventId": "e1", "sessionName": "ai:chat-1"})
        >>> inv.to_json()
        {'inputEventId': 'e1', 'sessionName': 'ai:chat-1'}
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    input_event_id: str = Field(alias="inputEventId", min_length=1, max_length=_MAX_ID)
    session_name: str = Field(alias="sessionName", min_length=1, max_length=_MAX_ID)

    @classmethod
    def from_json(cls, body: Mapping[str, Any] | str | bytes) -> Invocation:
        """Validate a decoded JSON body (or raw JSON text).

        Raises:
            InvalidInvocationError: (40000) with a message naming each bad field.
        """
        try:
            if isinstance(body, str | bytes):
                return cls.model_validate_json(body)
            if not isinstance(body, Mapping):
                raise InvalidInvocationError(
                    f"invalid invocation; expected a JSON object, got {type(body).__name__}"
                )
            return cls.model_validate(dict(body))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InvalidInvocationError(f"invalid invocation; {problems}") from None

    def to_json(self) -> dict[str, str]:
        """The wire body, exactly the two fields the JS client sends."""
        return {"inputEventId": self.input_event_id, "sessionName": self.session_name}
