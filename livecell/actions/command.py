"""Run a command with the event JSON on its standard input; exit status 0 is success.

The command is an argv list, run without a shell; it is killed when it runs
past the action's timeout.
"""

from __future__ import annotations

import subprocess

from livecell.actions._protocol import ActionFailed

_STDERR_TAIL = 500


class CommandSender:
    def __init__(self, argv: tuple[str, ...], timeout_s: float) -> None:
        self._argv = list(argv)
        self._timeout_s = timeout_s

    def send(self, payload: bytes) -> None:
        try:
            done = subprocess.run(
                self._argv,
                input=payload,
                capture_output=True,
                timeout=self._timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ActionFailed(
                f"{self._argv[0]} ran past {self._timeout_s} s and was killed"
            ) from None
        except OSError as exc:
            raise ActionFailed(f"cannot run {self._argv[0]}: {exc}") from None
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
            raise ActionFailed(f"{self._argv[0]} exited {done.returncode}: {stderr}")

    def close(self) -> None:
        """Nothing held between runs."""
