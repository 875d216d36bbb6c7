"""cryoscape.reconstruct (see DESIGN.md for what this layer holds)."""
