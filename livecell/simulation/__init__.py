"""The synthetic microscope: acquisitions with exact ground truth.

``nanowell.py`` (TIMING chips, phase contrast) and ``holotomo.py``
(refractive-index tomograms) are seeded simulators that yield ``SimFrame``
objects (``scene.py``) one time point at a time. ``truth.py`` writes the
ground truth (SPEC section 5), ``output.py`` writes the frames the way
acquisition software does (OME-TIFF in pieces, paced) or publishes them on
ZeroMQ, and ``preview.py`` draws the truth on a few frames.
"""
