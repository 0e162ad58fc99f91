"""Small shared helpers with no prodmatch imports but `errors`: hashing, vector normalisation, atomic writes,
file locks, signals, the config path."""
