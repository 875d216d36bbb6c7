"""cryoscape.data (see DESIGN.md for what this layer holds)."""
