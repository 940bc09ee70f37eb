"""bnblint: find and fix slow or broken bitsandbytes model loads."""

__version__ = "0.1.0"
