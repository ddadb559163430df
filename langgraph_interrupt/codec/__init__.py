"""The Vercel UI-message codec: chunks to wire operations and wire messages back to messages.

Pure: no I/O. The transport drives the encoder; clients and agents fold with the decoder.
"""

from ._decoder import DecodedMessage, UIMessageDecoder
from ._encoder import CHUNK_TYPES, Chunk, UIMessageEncoder, WireOp

__all__ = [
    "CHUNK_TYPES",
    "Chunk",
    "DecodedMessage",
    "UIMessageDecoder",
    "UIMessageEncoder",
    "WireOp",
]
