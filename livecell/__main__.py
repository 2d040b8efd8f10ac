"""``python -m livecell`` is the same as the ``livecell`` command."""

from livecell.cli import main

raise SystemExit(main())
