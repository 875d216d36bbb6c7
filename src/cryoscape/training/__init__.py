"""cryoscape.training (see DESIGN.md for what this layer holds)."""
