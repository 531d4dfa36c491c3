"""vmkit-tui: a keyboard-driven terminal dashboard for VMKit-style deploys."""

__version__ = "0.1.0"
