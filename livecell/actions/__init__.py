"""Acquisition triggers (SPEC section 7): matched events sent to a microscope's control.

Owns the ``[[actions]]`` behaviour behind ``ActionConfig``: ``matching`` (a pure
filter over event records), the senders behind the ``Sender`` protocol
(``_protocol.py``): ZeroMQ REQ (``zmq_req.py``), HTTP POST (``http_post.py``),
a command with the event on standard input (``command.py``), and ``ActionSink``
(``sink.py``), the event sink that queues matched events and sends them from a
thread per action with retries and backoff, so a slow or dead peer never delays
analysis. JSON on the wire, never pickle. docs/actions.md has the user's view.
"""

from livecell.actions._protocol import ActionFailed, Sender
from livecell.actions.matching import matches
from livecell.actions.sink import ActionSink, action_name, make_sender

__all__ = ["ActionFailed", "ActionSink", "Sender", "action_name", "make_sender", "matches"]
