"""livecell: a real-time analysis daemon for live-cell microscopy.

Frames flow from a source (``livecell.stream``) through the exactly-once
journal (``livecell.journal``) and a bounded queue to an analysis stage
(``livecell.analysis``); the events it derives (``livecell.events``) go to
the sinks (``livecell.sinks``). ``livecell.pipeline`` wires them together.
"""

__version__ = "0.1.0"
