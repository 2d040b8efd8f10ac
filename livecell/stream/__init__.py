"""Frame sources: where frames come from, as the microscope writes them.

``watch.py`` follows a folder of TIFF files (inotify or polling), ``zmq_source.py``
receives two-part ZeroMQ messages. Both produce ``Frame`` or ``Rejection``
items for the pipeline through the ``FrameSource`` protocol (``_protocol.py``).
Pure parsing lives apart from the I/O: ``tiff.py`` (files), ``messages.py``
(ZeroMQ messages), ``paths.py`` (position and t from a path).
"""

from livecell.stream._protocol import Emit, FrameSource

__all__ = ["Emit", "FrameSource"]
