"""Small shared helpers: hashing, vector normalisation, atomic writes and file locks (no heavy imports)."""
