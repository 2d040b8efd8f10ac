"""Training patch classifiers: data, grouped splits, the loop and ``livecell train``.

``livecell.training.datasets`` turns folder-per-class trees and simulator acquisitions
into labelled, grouped float32 patches, with normalisation and augmentation;
``livecell.training.splits`` splits by group (source image, acquisition/position) so
neighbouring patches never straddle train and test; ``livecell.training.train`` runs
the loop (class-weighted loss, early stopping, checkpoints with resume) and writes the
model, its card and the held-out metrics (``livecell.training.metrics``);
``livecell.training.command`` is the ``livecell train`` command line. Everything except
``command`` and ``splits`` needs torch (``pip install 'livecell[train]'``); ``datasets``
does not.
"""
