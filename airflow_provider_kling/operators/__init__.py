"""Operators: the i2v and any-model submit, the download and the batch budget."""
