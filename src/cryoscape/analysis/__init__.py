"""cryoscape.analysis (see DESIGN.md for what this layer holds)."""
