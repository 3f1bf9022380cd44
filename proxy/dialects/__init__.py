"""Wire formats, one package each, both directions, as pure functions over ``proxy.model``."""
