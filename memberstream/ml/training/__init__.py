"""Training and evaluation: the learned anomaly scorer, the review-sentiment head, the
text corpora and the review-summary reference set. May use :mod:`memberstream.datasets`."""
