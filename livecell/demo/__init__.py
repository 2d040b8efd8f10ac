"""``livecell demo``: a simulated nanowell microscope and the daemon, end to end.

``command.py`` parses the options and runs the simulator (a ``livecell simulate``
subprocess, paced in real time) beside the daemon (``run_daemon``, in-process);
``sink.py`` hands committed events to the terminal without ever blocking the
analysis; ``view.py`` turns event records into the lines the terminal shows.
"""
