"""Contract tests: the SDK against servers nobody here wrote (Prism, the Portkey gateway)."""
