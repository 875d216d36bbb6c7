"""cryoscape.cli (see DESIGN.md for what this layer holds)."""
