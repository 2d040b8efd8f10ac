"""Where events go once derived.

``EventLog`` (``jsonl.py``) is the durable JSON Lines file behind exactly-once;
``EventSink`` implementations (``_protocol.py``) receive events after they are
durable: the ZeroMQ publisher (``zmq_pub.py``), the tracks file (``tracks_csv.py``,
nanowell mode) and, outside this package, the acquisition triggers (``livecell.actions``)
and the demo's terminal view.
"""

from livecell.sinks._protocol import EventSink
from livecell.sinks.jsonl import EventLog, EventLogLocked
from livecell.sinks.zmq_pub import ZmqPublisher

__all__ = ["EventLog", "EventLogLocked", "EventSink", "ZmqPublisher"]
