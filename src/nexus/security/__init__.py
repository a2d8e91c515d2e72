"""Security primitives shared by the layers above ``domain``: what Nexus trusts on disk."""

from nexus.security.trusted import TrustedPaths, trusted_paths

__all__ = ["TrustedPaths", "trusted_paths"]
