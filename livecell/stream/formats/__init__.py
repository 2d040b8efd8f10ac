"""Readers for microscope formats that hold many frames in growing files.

Micro-Manager NDTiff (an append-only index beside large stack files),
Micro-Manager OME-TIFF stacks (``*_MMStack*.ome.tif``, grown page by page) and
Tomocube TCF (HDF5). Each reader follows one dataset while it is written and
hands out every image once it is complete (``DatasetReader.poll``); the
:class:`~livecell.stream.dataset_source.DatasetSource` turns them into frames.
"""
