"""The domain: the catalogue, the play rule, audio metadata, keys, signing and text rules."""
