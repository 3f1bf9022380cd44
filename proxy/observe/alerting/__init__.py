"""The parts of alerting (``proxy.observe.alerts`` composes them): the alert record and its
wire formats, delivery, budget thresholds and deployment health."""
