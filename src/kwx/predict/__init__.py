"""Cross-bracket classifiers of short-horizon moves and their calibrators."""
