"""The live dashboard (docs/dashboard.md): a read-only page served by the daemon itself.

``service.py`` is what the pipeline sees (an event sink and a frame observer that
never wait); ``views.py`` and ``render.py`` turn frames into small images,
``store.py`` keeps bounded state and history, ``hub.py`` fans events out to the
pages, ``server.py`` serves them; the page itself is ``static/``.
"""

from livecell.dashboard.service import Dashboard, open_dashboard
from livecell.dashboard.store import Limits

__all__ = ["Dashboard", "Limits", "open_dashboard"]
