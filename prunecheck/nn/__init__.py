"""Models: loading and fingerprints, layer predicates, masks, efficiency facts, file formats."""
