"""digest: a newsletter digest generator and mailer for newsrooms."""

__version__ = "0.1.0"
__all__ = ["__version__"]
