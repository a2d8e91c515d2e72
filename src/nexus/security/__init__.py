"""Security primitives shared by the layers above ``domain``: what Nexus trusts on disk."""

from nexus.security.signing import AuditKey, PublicKey, merkle_root
from nexus.security.trusted import TrustedPaths, trusted_paths

__all__ = ["AuditKey", "PublicKey", "TrustedPaths", "merkle_root", "trusted_paths"]
