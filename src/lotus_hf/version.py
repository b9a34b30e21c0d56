"""The version of lotus-hf, in a module of its own so that any module can record it without importing the
package's `__init__` (the Space ships lotus_hf/ as a plain folder beside its app)."""

__version__ = "0.2.0"
