"""The pure core: decisions and bookkeeping that never await and never do I/O."""
