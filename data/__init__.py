"""fanzha's bottom layer: label taxonomy, text normalization, corpora, tables.

Both `training/` and `serving/` build on this package; it imports neither of them, nor torch.
"""
