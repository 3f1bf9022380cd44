"""The provider engine: HTTP transports, deadlines, stream framing and the stream owner."""
