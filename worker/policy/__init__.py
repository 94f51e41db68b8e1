"""Send policies that are not the provider's: the Sendmode low-credit pause and the opt-out list."""
