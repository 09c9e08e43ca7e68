"""How one request is sent and its reply assembled: a `Sender`, and what its failures mean.

`base` is the interface the rest of batchstream sees; `streaming` sends each request as a Messages API
stream (the SDK's, read by `sse` and `accumulate`); `failures` turns whatever an attempt raised into a
`Failure` the retry policy can act on.
"""

from .base import Sender, Sent

__all__ = ["Sender", "Sent"]
